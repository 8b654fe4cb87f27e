"""The one writer per row kind (rlhf.data.records) and the one role check (rlhf.data.accounts.require)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from conftest import write_jsonl
from rlhf.data import records
from rlhf.data.accounts import ADMINS, LABELERS, REVIEWERS, AccessDenied, hash_password, require
from rlhf.data.formats import content_hash, ranks_to_order
from rlhf.data.ingest import import_demonstrations, import_prompts, import_rankings
from rlhf.data.store import session_scope
from rlhf.data.store.models import Demonstration, Prompt, Ranking, Response, Review, User
from rlhf.errors import InputError, RlhfError
from rlhf.review import actions as review

PROMPTS = [{"id": "q1", "messages": [{"role": "user", "content": "How do I boil an egg?"}]},
           {"id": "q2", "messages": [{"role": "user", "content": "What is rust?"}]}]
ANSWERS = ["Boil it for 9 minutes, then cool it in cold water.", "Put it in water.", "Eggs are food."]


@pytest.fixture
def store(tmp_path, monkeypatch, database):
    """A fresh RLHF_HOME with two prompts, an expert (eve) and an annotator (ann), on SQLite and PostgreSQL."""
    monkeypatch.setenv("RLHF_HOME", str(tmp_path / "home"))
    with session_scope() as s:
        import_prompts(s, write_jsonl(tmp_path / "p.jsonl", PROMPTS))
        s.add(User(name="eve", role="expert"))
        s.add(User(name="ann", role="annotator"))
    return tmp_path


def prompt(s, ext: str = "q1") -> Prompt:
    return s.scalar(select(Prompt).where(Prompt.external_id == ext))


def user(s, name: str) -> User:
    return s.scalar(select(User).where(User.name == name))


def count(s, model) -> int:
    return s.scalar(select(func.count()).select_from(model))


# --------------------------------------------------------------------------- the hash rule


def test_imported_rows_hash_as_files_always_did(store):
    """The rule an old workspace's rows were stored with: re-importing a file finds its duplicates."""
    demo = {"prompt_id": "q1", "messages": PROMPTS[0]["messages"] + [{"role": "assistant", "content": ANSWERS[0]}],
            "annotator": "ann"}
    ranking = {"prompt_id": "q1", "responses": ANSWERS, "order": [[0], [2, 1]], "annotator": "ann"}
    with session_scope() as s:
        import_demonstrations(s, write_jsonl(store / "d.jsonl", [demo]))
        import_rankings(s, write_jsonl(store / "r.jsonl", [ranking]))
    with session_scope() as s:
        p, d, r = prompt(s), s.scalar(select(Demonstration)), s.scalar(select(Ranking))
        assert d.content_hash == content_hash({"prompt": p.content_hash, "messages": demo["messages"]})
        assert r.content_hash == content_hash({"prompt": p.content_hash, "responses": r.response_ids, "order": [[0], [2, 1]],
                                               "all_bad": False, "annotator": "ann"})
        assert r.content_hash == records.ranking_hash(p, r.response_ids, [[0], [2, 1]], False, "ann")
        assert import_rankings(s, write_jsonl(store / "r2.jsonl", [ranking])).duplicates == 1
        assert import_demonstrations(s, write_jsonl(store / "d2.jsonl", [demo])).duplicates == 1


def test_a_key_names_where_a_row_was_made(store):
    with session_scope() as s:
        p, ann = prompt(s), user(s, "ann")
        plain = records.add_demonstration(s, p, ANSWERS[0], annotator=ann)
        keyed = records.add_demonstration(s, p, ANSWERS[0], annotator=ann, key="label_item:1:ann")
        other = records.add_demonstration(s, p, ANSWERS[0], annotator=ann, key="label_item:2:ann")
        again = records.add_demonstration(s, p, ANSWERS[0], annotator=ann, key="label_item:1:ann")
        assert plain.created and keyed.created and other.created and not again.created
        assert again.row.id == keyed.row.id and len({plain.row.id, keyed.row.id, other.row.id}) == 3
        messages = [*p.messages, {"role": "assistant", "content": ANSWERS[0]}]
        assert keyed.row.content_hash == content_hash({"prompt": p.content_hash, "messages": messages,
                                                       "key": "label_item:1:ann"})
        assert plain.row.content_hash == records.demonstration_hash(p, messages)
        ids = [records.add_response(s, p, t, origin="model", model_version="m").id for t in ANSWERS[:2]]
        a = records.add_ranking(s, p, ids, [[1], [0]], annotator=ann, key="edit:3->5")
        assert a.row.content_hash == records.ranking_hash(p, ids, [[1], [0]], False, "ann", key="edit:3->5")
        assert a.row.content_hash != records.ranking_hash(p, ids, [[1], [0]], False, "ann")


# --------------------------------------------------------------------------- validation


def test_writers_check_their_input_and_name_the_field(store):
    with session_scope() as s:
        p = prompt(s)
        with pytest.raises(InputError, match=r"^your answer to q1: answer: empty or whitespace-only text$"):
            records.add_demonstration(s, p, "   ", where="your answer to q1")
        with pytest.raises(InputError, match=r"demonstration of prompt 'q1': answer: text contains a NUL character"):
            records.add_demonstration(s, p, "a\x00b")
        with pytest.raises(InputError, match=r"answer: text is \d+ characters, over the limit"):
            records.add_demonstration(s, p, "x" * 20001)
        ids = [records.add_response(s, p, t, origin="model").id for t in ANSWERS]
        with pytest.raises(InputError, match=r"ranking of prompt 'q1': order\[1\]: response index 0 appears more than once"):
            records.add_ranking(s, p, ids, [[0], [0, 1], [2]])
        with pytest.raises(InputError, match=r"order: response indices \[2\] are missing"):
            records.add_ranking(s, p, ids, [[0], [1]])
        with pytest.raises(InputError, match=r"response_ids: a ranking needs at least 2 different responses"):
            records.add_ranking(s, p, [ids[0], ids[0]], [[0], [1]])
        with pytest.raises(InputError, match=r"prompts.jsonl:3: messages\[0\].role: the last message of a prompt"):
            records.add_prompt(s, "q3", [{"role": "assistant", "content": "Hi"}], where="prompts.jsonl", line=3)
        with pytest.raises(InputError, match=r"prompts.jsonl:4: id: prompt id 'q1' is already used"):
            records.add_prompt(s, "q1", [{"role": "user", "content": "Other?"}], where="prompts.jsonl", line=4)
        with pytest.raises(InputError, match=r"response to prompt 'q1': text: empty"):
            records.add_response(s, p, " ", origin="human")
        assert records.add_response(s, p, "", origin="model").text == ""  # a model's empty answer is data
        assert count(s, Demonstration) == 0 and count(s, Ranking) == 0


def test_ranks_to_order_reads_what_a_person_typed():
    assert ranks_to_order([2, "1", 2.0, 3], k=4) == [[1], [0, 2], [3]]
    assert ranks_to_order([4, 1, 9, 4]) == [[1], [0, 3], [2]]  # without k the numbers are only compared
    assert ranks_to_order([None, None, None], k=3, all_bad=True) == [[0, 1, 2]]
    with pytest.raises(RlhfError, match=r"^answer B: rank 7 is outside 1..3$"):
        ranks_to_order([1, 7, 2], k=3)
    with pytest.raises(RlhfError, match=r"^answer A: rank 'x' is not a number$"):
        ranks_to_order(["x", 1], k=2)
    with pytest.raises(RlhfError, match=r"^give every answer a rank \(1 = best, equal numbers = tie\): missing A, C$"):
        ranks_to_order([None, 1], k=3)
    with pytest.raises(RlhfError, match="missing C"):
        ranks_to_order([1, 2, None], k=3, all_bad=True)  # all bad may leave every answer blank, not some


# --------------------------------------------------------------------------- duplicates and approval


def test_duplicates_return_the_stored_row_or_raise_naming_it(store):
    with session_scope() as s:
        p = prompt(s)
        first = records.add_demonstration(s, p, ANSWERS[0], annotator="newcomer")
        assert first.created and user(s, "newcomer").password_hash is None  # created, cannot log in
        twin = records.add_demonstration(s, p, ANSWERS[0], annotator="someone-else")
        assert (twin.row.id, twin.created) == (first.row.id, False)
        assert user(s, "someone-else") is None  # nobody is created for a duplicate
        with pytest.raises(records.DuplicateError, match=f"demonstration {first.row.id} already has exactly this answer "
                                                         "to prompt 'q1'; review that one") as e:
            records.add_demonstration(s, p, ANSWERS[0], duplicate="raise")
        assert e.value.row_id == first.row.id and isinstance(e.value, RlhfError)
        ids = [records.add_response(s, p, t, origin="model").id for t in ANSWERS[:2]]
        r = records.add_ranking(s, p, ids, [[0], [1]], annotator="ann")
        with pytest.raises(records.DuplicateError, match=f"ranking {r.row.id} already stores exactly this order .* by ann"):
            records.add_ranking(s, p, ids, [[0], [1]], annotator="ann", duplicate="raise")
        assert count(s, Demonstration) == 1 and count(s, Ranking) == 1


def test_an_approved_row_says_who_approved_it(store):
    with session_scope() as s:
        p, eve = prompt(s), user(s, "eve")
        d = records.add_demonstration(s, p, ANSWERS[1], approved=records.Approval("lead", "imported from x.jsonl")).row
        ids = [records.add_response(s, p, t, origin="model").id for t in ANSWERS[:2]]
        r = records.add_ranking(s, p, ids, [[1], [0]], annotator=eve,
                                approved=records.Approval(eve, " why ", "adjudicate", {"k": 1})).row
        pending = records.add_demonstration(s, p, ANSWERS[2]).row
        assert (d.status, r.status, pending.status) == ("approved", "approved", "pending")
        revs = s.scalars(select(Review).order_by(Review.id)).all()
        assert [(v.item_type, v.item_id, v.reviewer_name, v.reviewer_id, v.verdict, v.reason, v.payload) for v in revs] == [
            ("demonstration", d.id, "lead", None, "approve", "imported from x.jsonl", {}),
            ("ranking", r.id, "eve", eve.id, "adjudicate", "why", {"k": 1})]


# --------------------------------------------------------------------------- adjudication


def test_adjudication_is_idempotent(store):
    rankings = [{"prompt_id": "q1", "responses": ANSWERS, "order": order, "annotator": name}
                for name, order in (("a1", [[0], [1], [2]]), ("a2", [[2], [1], [0]]), ("a3", [[1], [0, 2]]))]
    with session_scope() as s:
        import_rankings(s, write_jsonl(store / "r.jsonl", rankings))
        pid = prompt(s).id
    with session_scope() as s:
        first = review.adjudicate(s, "eve", pid, [[0], [1], [2]], "the 9-minute answer is right").id
    with session_scope() as s:
        before = (count(s, Ranking), count(s, Review))
        again = review.adjudicate(s, "eve", pid, [[0], [1], [2]], "clicked twice")
        assert again.id == first and (count(s, Ranking), count(s, Review)) == before
    with session_scope() as s:  # a change of mind is a new consensus, and so is going back to the first order
        second = review.adjudicate(s, "eve", pid, [[1], [0], [2]], "on reflection").id
        third = review.adjudicate(s, "eve", pid, [[0], [1], [2]], "back to the first").id
        assert len({first, second, third}) == 3
        assert review.adjudicate(s, "eve", pid, [[0], [1], [2]], "and again").id == third
        verdicts = s.scalars(select(Review.verdict).where(Review.verdict.in_(("adjudicate", "supersede")))).all()
        assert sorted(verdicts) == ["adjudicate"] * 3 + ["supersede"] * 3  # the annotators' rankings, once each


# --------------------------------------------------------------------------- the role check


def test_require_is_the_one_role_check(store):
    with session_scope() as s:
        s.add(User(name="pat", role="annotator", password_hash=hash_password("a-long-password")))
        s.add(User(name="sim:judge:0", role="expert", simulated=True))
        s.flush()
        assert require(s, "pat", LABELERS, "write").name == "pat"
        assert require(s, user(s, "eve"), REVIEWERS, "approve", login=False).name == "eve"
        assert require(s, "sim:judge:0", REVIEWERS, "A/B judging", login=False).simulated  # a script's simulated judge
        cases = [(lambda: require(s, "pat", REVIEWERS, "approve"),
                  "approve: pat is annotator, this needs the expert or admin role"),
                 (lambda: require(s, "", LABELERS, "write"), "write: not logged in"),
                 (lambda: require(s, "eve", REVIEWERS, "approve"), "approve: no active account 'eve'; log in again"),
                 (lambda: require(s, "sim:judge:0", REVIEWERS, "approve"), "approve: no active account 'sim:judge:0'"),
                 (lambda: require(s, "nobody", ADMINS, "import", login=False), "import: no user 'nobody'"),
                 (lambda: review.approve(s, "ann", "demonstration", 1), "approve: ann is annotator, this needs the expert"),
                 (lambda: review.adjudicate(s, "ann", 1, [[0], [1]], "mine"), "adjudicate: ann is annotator")]
        for call, message in cases:
            with pytest.raises(AccessDenied, match=message.replace("(", r"\(")) as e:
                call()
            assert isinstance(e.value, PermissionError) and isinstance(e.value, RlhfError)
        assert count(s, Ranking) == 0 and count(s, Review) == 0 and count(s, Response) == 0
