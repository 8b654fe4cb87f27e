"""Review queue and actions: approve, reject, edit -> new version + preference pair, snapshots, roles."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from conftest import run_cli, write_jsonl
from rlhf.data import registry
from rlhf.data.accounts import AccessDenied
from rlhf.review import actions as review
from rlhf.errors import RlhfError
from rlhf.data.store import session_scope
from rlhf.data.ingest import import_demonstrations, import_prompts, import_rankings
from rlhf.data.store.models import Demonstration, Ranking, Response, Review, User

PROMPTS = [
    {"id": "c1", "messages": [{"role": "user", "content": "How long do I boil an egg?"}], "tags": ["cooking"]},
    {"id": "c2", "messages": [{"role": "user", "content": "How do I keep rice from sticking?"}], "tags": ["cooking"]},
    {"id": "s1", "messages": [{"role": "user", "content": "Why is the sky blue?"}], "tags": ["science"]},
]
DEMOS = [  # oldest first after `seed` sets created_at
    {"prompt_id": "c1", "messages": PROMPTS[0]["messages"] + [{"role": "assistant", "content": "About 9 minutes for hard."}],
     "annotator": "ann1"},
    {"prompt_id": "s1", "messages": PROMPTS[2]["messages"] + [{"role": "assistant", "content": "Because it is."}],
     "annotator": "ann2"},
    {"prompt_id": "c2", "messages": PROMPTS[1]["messages"] + [{"role": "assistant", "content": "Rinse it first."}],
     "annotator": "ann2"},
]
RANKING = {"prompt_id": "s1", "responses": ["Rayleigh scattering of sunlight.", "Magic."], "order": [[0], [1]],
           "annotator": "ann1"}


@pytest.fixture
def store(tmp_path, monkeypatch, database):
    """A fresh RLHF_HOME with its own store, SQLite and PostgreSQL (no model needed, so no built-in conversion)."""
    monkeypatch.setenv("RLHF_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def seeded(store, tmp_path):
    """Three pending demonstrations (ann1, ann2, ann2), one pending ranking (ann1), an expert and an annotator."""
    with session_scope() as s:
        import_prompts(s, write_jsonl(tmp_path / "p.jsonl", PROMPTS))
        import_demonstrations(s, write_jsonl(tmp_path / "d.jsonl", DEMOS))
        import_rankings(s, write_jsonl(tmp_path / "r.jsonl", [RANKING]))
        t0 = dt.datetime(2026, 1, 1)
        for i, d in enumerate(s.scalars(select(Demonstration).order_by(Demonstration.id))):
            d.created_at = t0 + dt.timedelta(hours=2 * i)  # demos at 0h, 2h, 4h
        s.scalar(select(Ranking)).created_at = t0 + dt.timedelta(hours=1)  # the ranking at 1h
        s.add(User(name="eve", role="expert"))
        s.add(User(name="root", role="admin"))
        s.scalar(select(User).where(User.name == "ann1")).role = "annotator"
    return store


def counts(s) -> dict:
    return {m.__name__: s.scalar(select(func.count()).select_from(m)) for m in (Demonstration, Ranking, Response, Review)}


def test_queue_oldest_first_with_filters(seeded):
    with session_scope() as s:
        items = review.queue(s)
        assert [it.key for it in items] == ["demonstration:1", "ranking:1", "demonstration:2", "demonstration:3"]
        assert items[0].answer == "About 9 minutes for hard." and items[0].annotator == "ann1"
        assert items[1].responses == RANKING["responses"] and items[1].order == [[0], [1]]
        assert [it.key for it in review.queue(s, tag="cooking")] == ["demonstration:1", "demonstration:3"]
        assert [it.key for it in review.queue(s, annotator="ann2")] == ["demonstration:2", "demonstration:3"]
        assert [it.key for it in review.queue(s, kind="ranking", tag="science")] == ["ranking:1"]
        assert review.queue_filters(s) == (["cooking", "science"], ["ann1", "ann2"])


def test_approve_and_reject_record_who_when_why(seeded):
    with session_scope() as s:
        review.approve(s, "eve", "demonstration", 1)
        with pytest.raises(RlhfError, match="needs a reason"):
            review.reject(s, "eve", "demonstration", 2, "   ")
        review.reject(s, "root", "ranking", 1, "the second answer is not an answer")
    with session_scope() as s:
        assert s.get(Demonstration, 1).status == "approved" and s.get(Ranking, 1).status == "rejected"
        revs = s.scalars(select(Review).order_by(Review.id)).all()
        assert [(r.item_type, r.item_id, r.reviewer_name, r.verdict) for r in revs] == [
            ("demonstration", 1, "eve", "approve"), ("ranking", 1, "root", "reject")]
        assert revs[1].reason == "the second answer is not an answer" and all(r.created_at for r in revs)
        assert [it.key for it in review.queue(s)] == ["demonstration:2", "demonstration:3"]
        review.approve(s, "eve", "ranking", 1, "on second thought")  # a change of mind is a new row
    with session_scope() as s:
        assert s.get(Ranking, 1).status == "approved"
        assert [r.verdict for r in review.history(s, "ranking", 1)] == ["reject", "approve"]


def test_edit_stores_new_version_and_preference_pair(seeded):
    with session_scope() as s:
        before = counts(s)
        res = review.edit_demonstration(s, "eve", 2, "Sunlight scatters off air molecules; blue light scatters most.",
                                        "the original gave no reason")
        new_id, pref_id = res.new.id, res.preference.id
    with session_scope() as s:
        orig, new = s.get(Demonstration, 2), s.get(Demonstration, new_id)
        assert orig.status == "superseded" and orig.messages[-1]["content"] == "Because it is."  # kept as it was
        assert (new.version, new.parent_id, new.status, new.prompt_id) == (2, 2, "approved", orig.prompt_id)
        assert new.messages[:-1] == orig.messages[:-1]
        assert new.messages[-1] == {"role": "assistant", "content": "Sunlight scatters off air molecules; blue light scatters most."}
        assert s.get(User, new.annotator_id).name == "eve"
        pref = s.get(Ranking, pref_id)
        texts = [s.get(Response, rid).text for rid in pref.response_ids]
        assert texts == [new.messages[-1]["content"], "Because it is."] and pref.order == [[0], [1]]
        assert (pref.origin, pref.status, s.get(User, pref.annotator_id).name) == ("human", "approved", "eve")
        edit = s.scalar(select(Review).where(Review.item_type == "demonstration", Review.item_id == 2))
        assert (edit.verdict, edit.reviewer_name, edit.reason) == ("edit", "eve", "the original gave no reason")
        assert edit.payload["new_demonstration_id"] == new_id and edit.payload["preference_ranking_id"] == pref_id
        assert [d.id for d in review.versions(s, 2)] == [2, new_id]
        after = counts(s)
        assert after["Demonstration"] == before["Demonstration"] + 1 and after["Ranking"] == before["Ranking"] + 1
        assert after["Review"] == before["Review"] + 3  # edit on the original, approve on the new one, edit on the pair
        with pytest.raises(RlhfError, match="superseded: review its newer version"):
            review.approve(s, "eve", "demonstration", 2)
        with pytest.raises(RlhfError, match="same as the original"):
            review.edit_demonstration(s, "eve", new_id, " " + new.messages[-1]["content"])
        # into the registry: the edited answer (approved) is SFT data, the pair is preference data
        sft, _ = registry.snapshot(s, "sft")
        rows = registry.load(s, sft.ref).to_list()
        assert [r["demonstration_id"] for r in rows] == [new_id]
        prefs, _ = registry.snapshot(s, "preferences")
        pairs = registry.load(s, prefs.ref).to_list()
        assert len(pairs) == 1 and pairs[0]["chosen"][0]["content"] == new.messages[-1]["content"]
        assert pairs[0]["rejected"][0]["content"] == "Because it is." and pairs[0]["annotator"] == "eve"


def test_unreviewed_items_stay_out_of_default_snapshots(seeded):
    with session_scope() as s:
        with pytest.raises(RlhfError, match="nothing to snapshot"):  # all pending: nothing approved yet
            registry.snapshot(s, "sft")
        review.approve(s, "eve", "demonstration", 1)
        review.reject(s, "eve", "demonstration", 3, "wrong: rinsing is not enough")
    with session_scope() as s:
        dv, _ = registry.snapshot(s, "sft")  # default options
        assert [r["demonstration_id"] for r in registry.load(s, dv.ref).to_list()] == [1]  # 2 pending, 3 rejected: out
        with pytest.raises(RlhfError, match="nothing to snapshot"):
            registry.snapshot(s, "preferences")  # the only ranking is still pending
        dv, _ = registry.snapshot(s, "sft", registry.SnapshotOptions(include_pending=True))
        assert [r["demonstration_id"] for r in registry.load(s, dv.ref).to_list()] == [1, 2]  # rejected never


def test_annotators_cannot_review(seeded):
    with session_scope() as s:
        before = counts(s)
        for call in (lambda: review.approve(s, "ann1", "demonstration", 2),
                     lambda: review.reject(s, "ann1", "demonstration", 2, "no"),
                     lambda: review.edit_demonstration(s, "ann1", 2, "Mine is better."),
                     lambda: review.adjudicate(s, "ann1", 3, [[0], [1]], "mine"),
                     lambda: review.approve(s, None, "demonstration", 2),
                     lambda: review.approve(s, "nobody", "demonstration", 2)):
            with pytest.raises(AccessDenied):
                call()
        assert counts(s) == before and s.get(Demonstration, 2).status == "pending"


def test_nobody_reviews_their_own_work(seeded):
    """An expert who also annotated (ann1 made an expert here) may not approve, reject, edit or adjudicate it."""
    with session_scope() as s:
        s.scalar(select(User).where(User.name == "ann1")).role = "expert"
    with session_scope() as s:
        own_demo = s.scalar(select(Demonstration).join(User, Demonstration.annotator_id == User.id).where(User.name == "ann1"))
        own_ranking = s.scalar(select(Ranking))  # ann1's ranking of s1
        before = counts(s)
        for call, what in ((lambda: review.approve(s, "ann1", "demonstration", own_demo.id), "approve"),
                           (lambda: review.reject(s, "ann1", "ranking", own_ranking.id, "meh"), "reject"),
                           (lambda: review.edit_demonstration(s, "ann1", own_demo.id, "Nine minutes, then cold water."), "edit"),
                           (lambda: review.adjudicate(s, "ann1", own_ranking.prompt_id, [[1], [0]], "mine"), "adjudicate")):
            with pytest.raises(AccessDenied, match=rf"^{what}: .* is ann1's own work; another reviewer must {what} it$|"
                                                   rf"^adjudicate: ann1 ranked prompt 's1' \(ranking \d+\); another reviewer"):
                call()
        assert counts(s) == before and s.get(Demonstration, own_demo.id).status == "pending"
        review.approve(s, "eve", "demonstration", own_demo.id)  # another reviewer may
        review.adjudicate(s, "eve", own_ranking.prompt_id, [[1], [0]], "the second answer is right")


def test_cli_review_commands(seeded):
    out = run_cli("review", "queue", "--tag", "cooking")
    assert out.returncode == 0, out.stderr
    assert "2 item(s) waiting" in out.stdout and "demonstration:1" in out.stdout
    out = run_cli("review", "approve", "demonstration:1", "--reviewer", "eve")
    assert out.returncode == 0 and "approved by eve" in out.stdout
    out = run_cli("review", "edit", "demonstration:3", "-r", "eve", "--text", "Rinse it, then rest it 10 minutes.")
    assert out.returncode == 0 and "version 2" in out.stdout
    out = run_cli("review", "reject", "demonstration:2", "--reviewer", "ann1", "--reason", "x")
    assert out.returncode == 2 and out.stderr.startswith("error: ") and "annotator" in out.stderr
    with session_scope() as s:
        assert s.get(Demonstration, 1).status == "approved" and s.get(Demonstration, 3).status == "superseded"
        assert s.get(Demonstration, 2).status == "pending"


# --------------------------------------------------------------------------- the app's expert pages (handlers, no server)


@pytest.fixture
def accounts(seeded, monkeypatch):
    """Log-in accounts: eve (expert), ann1 (annotator); the handlers reload them from the store on every call."""
    from rlhf.data import accounts as auth

    monkeypatch.setenv("RLHF_PASSWORD_HASH", "fast")
    with session_scope() as s:
        auth.set_password(s, "eve", "expert-password")
        auth.set_password(s, "ann1", "annotator-password")
    return seeded


def test_review_page_handlers_for_an_expert(accounts):
    from labeling_app import review_handlers as rp

    me = rp.ReviewSession("eve")
    v = rp.review_queue(me)
    assert v.keys == ["demonstration:1", "ranking:1", "demonstration:2", "demonstration:3"] and v.item.key == "demonstration:1"
    assert "About 9 minutes" in v.item_html() and v.rows[0][:2] == ["demonstration:1", "demonstration"]
    v = rp.review_approve(me, "demonstration:1")
    assert v.message == "Approved demonstration:1." and v.item.key == "ranking:1"
    assert v.item.ranks == [1, 2] and "Rayleigh" in v.item_html()
    v = rp.review_edit(me, "demonstration:2", "Blue light scatters most in air.", "give the reason", tag="science")
    assert "version 2" in v.message and v.keys == ["ranking:1"]
    with pytest.raises(RlhfError, match="only demonstrations can be edited"):
        rp.review_edit(me, "ranking:1", "x")
    v = rp.review_reject(me, "ranking:1", "magic is not an answer")
    assert v.keys == ["demonstration:3"]
    assert rp.review_queue(me, key="demonstration:3").item.history == []
    # stored text is escaped on the page
    with session_scope() as s:
        s.get(Demonstration, 3).messages = [*s.get(Demonstration, 3).messages[:-1],
                                            {"role": "assistant", "content": "<script>alert(1)</script>"}]
    html = rp.review_queue(me).item_html()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    dash = rp.agreement_dashboard(me)
    assert "Krippendorff" in dash.summary and "Annotators:" in dash.text
    adj = rp.adjudication_queue(me)
    assert adj.prompt_id is None and "No contested items" in adj.item_html()


def test_annotators_cannot_call_review_handlers(accounts):
    from labeling_app import review_handlers as rp

    ann, nobody = rp.ReviewSession("ann1"), rp.ReviewSession("")
    calls = [lambda u: rp.review_queue(u), lambda u: rp.review_approve(u, "demonstration:1"),
             lambda u: rp.review_reject(u, "demonstration:1", "bad"),
             lambda u: rp.review_edit(u, "demonstration:1", "Mine."), lambda u: rp.agreement_dashboard(u),
             lambda u: rp.adjudication_queue(u), lambda u: rp.adjudicate_submit(u, 1, ["1", "2"], "mine"),
             lambda u: rp.ab_sessions(u), lambda u: rp.ab_next(u, 1), lambda u: rp.ab_judge(u, 1, 1, "left"),
             lambda u: rp.ab_report(u, 1)]
    with session_scope() as s:
        before = counts(s)
    for who in (ann, nobody):
        for call in calls:
            with pytest.raises(PermissionError):
                call(who)
    assert not rp.can_review(ann) and rp.can_review(rp.ReviewSession("eve"))
    with session_scope() as s:
        assert counts(s) == before and s.get(Demonstration, 1).status == "pending"


def test_ranks_to_order():
    from rlhf.data.formats import ranks_to_order

    assert ranks_to_order(["2", "1", "2", "3"]) == [[1], [0, 2], [3]]
    with pytest.raises(RlhfError, match="give every answer a rank .*: missing B"):
        ranks_to_order(["1", None])
