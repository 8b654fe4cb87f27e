"""The closed loop in the app (issue 16): the uncertainty queue with exploration, gold items mixed into queues,
feedback after a submit, annotator quality on the admin page and in preference snapshots. Each test runs on
SQLite and on PostgreSQL (`home`'s `database` parameter)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app_support import candidates, home, me, set_settings  # noqa: F401 (home: fixture)
from conftest import run_cli
from labeling_app import admin, queue, review_handlers
from labeling_app import handlers as h
from rlhf.data import gold, registry
from rlhf.data.accounts import AccessDenied
from rlhf.data.store import session_scope
from rlhf.data.store.app_models import Assignment, LabelItem
from rlhf.data.store.loop_models import GoldItem, ItemPriority
from rlhf.data.store.models import Prompt, Ranking, Review, User
from rlhf.errors import RlhfError


def rank_items() -> dict[str, int]:
    """"PROMPT:MODEL@vN" -> id of every rank item (made now if missing)."""
    with session_scope() as db:
        queue.sync_items(db)
        rows = db.execute(select(Prompt.external_id, LabelItem.key, LabelItem.id).join(Prompt, Prompt.id == LabelItem.prompt_id)
                          .where(LabelItem.kind == "rank")).all()
        return {f"{ext}:{key.split(':', 2)[2]}": item_id for ext, key, item_id in rows}


def prioritize(priorities: dict[int, float], scores: dict[int, dict] | None = None) -> None:
    with session_scope() as db:
        for item_id, p in priorities.items():
            db.add(ItemPriority(item_id=item_id, model_ref="rm@v1", priority=p, scores=(scores or {}).get(item_id, {})))


def user_id(name: str) -> int:
    with session_scope() as db:
        return db.scalar(select(User.id).where(User.name == name))


def claim(name: str, status: str = "skipped") -> int | None:
    """The item id of `name`'s next rank claim, finished at once as `status` (so the next call claims again)."""
    with session_scope() as db:
        user = db.scalar(select(User).where(User.name == name))
        a = queue.next_assignment(db, user, "rank")
        if a is None:
            return None
        queue.complete(db, a, status)
        return a.item_id


def rank_in_item_order(name: str, reverse: bool = False, s=None) -> int:
    """`name` ranks the item on their screen (tab `s`) in the item's own response order (best = first), or reversed."""
    s = s or me(name)
    v = h.rank_next(s)
    with session_scope() as db:
        a = db.get(Assignment, v.assignment_id)
        item = db.get(LabelItem, a.item_id)
        shown = queue.shown_order(a.user_id, item)
        k = len(shown)
        ranks = [item.response_ids.index(r) + 1 for r in shown]
    assert h.rank_submit(s, [k + 1 - r for r in ranks] if reverse else ranks).status == "stored"
    return a.item_id


# --------------------------------------------------------------------------- part 1: the queue policy


def test_settings_are_checked(home):
    for bad in ({"queue_policy": "smart"}, {"exploration": 1.5}, {"gold_rate": "x"}, {"quality_threshold": -2},
                {"exploration": float("nan")}):
        with pytest.raises(queue.QueueError, match=next(iter(bad))):
            set_settings(**bad)
    set_settings(queue_policy="uncertainty", exploration="0.25", gold_rate=0, show_feedback=0)
    with session_scope() as db:
        got = queue.get_settings(db)
    assert (got["queue_policy"], got["exploration"], got["gold_rate"], got["show_feedback"]) == ("uncertainty", 0.25, 0.0, False)
    # the admin page's form sends every field at once (admin.FORM_DEFAULTS order), numbers as gradio gives them
    admin.admin_save_settings(me("root"), **dict(admin.FORM_DEFAULTS, queue_policy="random", gold_rate=0.25,
                                                 quality_threshold=0.7, show_feedback=True))
    got = admin.admin_get_settings(me("root"))
    assert (got["queue_policy"], got["gold_rate"], got["quality_threshold"], got["show_feedback"]) == ("random", 0.25, 0.7, True)
    with pytest.raises(RlhfError, match="exploration: expected a number, got None"):
        admin.admin_save_settings(me("root"), **dict(admin.FORM_DEFAULTS, exploration=None))


def test_uncertainty_serves_the_most_uncertain_item_first_and_unscored_ones_last(home):
    for p in ("p1", "p2", "p3"):
        candidates(p)
    ids = rank_items()
    p1, p2, p3 = ids["p1:sft@v1"], ids["p2:sft@v1"], ids["p3:sft@v1"]
    prioritize({p1: 0.1, p3: 0.9})
    set_settings(exploration=0, gold_rate=0)
    assert claim("bob") == p1  # random (the default): oldest first, the priorities unused
    set_settings(queue_policy="uncertainty")
    assert [claim("ana") for _ in range(4)] == [p3, p1, p2, None]  # p2 has no priority: after those with one


def test_exploration_takes_random_items_at_the_configured_share(home):
    for i in range(12):
        candidates("p1", k=2, version=f"m{i}@v1")
    ids = sorted(rank_items().values())
    prioritize({item: float(n) for n, item in enumerate(ids)})  # the newest item is the most uncertain
    set_settings(queue_policy="uncertainty", exploration=0.3, gold_rate=0)
    ana, left, explored, off_top = user_id("ana"), set(ids), 0, 0
    for n in range(len(ids)):
        got = claim("ana")
        if queue.draw("explore", ana, n) < 0.3:
            explored += 1
            off_top += got != max(left)
        else:
            assert got == max(left), n  # not exploring: the highest priority left
        left.remove(got)
    assert claim("ana") is None and explored >= 2 and off_top >= 1
    # over many claims the share is the setting's (the draw is what the queue uses, per user and claim)
    draws = [queue.draw("explore", u, c) < 0.3 for u in range(1, 21) for c in range(100)]
    assert abs(sum(draws) / len(draws) - 0.3) < 0.03


def test_overlap_n_holds_under_the_uncertainty_policy(home):
    for p in ("p1", "p2", "p3"):
        candidates(p)
    ids = rank_items()
    prioritize({ids["p3:sft@v1"]: 1.0, ids["p1:sft@v1"]: 0.5})
    set_settings(queue_policy="uncertainty", exploration=0.5, gold_rate=0, rank_overlap=2)
    for name in ("ana", "bob", "cy", "eve", "root"):
        while claim(name, "done") is not None:
            pass
    with session_scope() as db:
        per_item = dict(db.execute(select(Assignment.item_id, func.count()).group_by(Assignment.item_id)).all())
    assert per_item == {i: 2 for i in ids.values()}  # every item went to exactly N = 2 people


# --------------------------------------------------------------------------- part 3: gold items


def test_marking_gold_is_for_experts_idempotent_and_checked(home):
    candidates("p1", k=3)
    item = rank_items()["p1:sft@v1"]
    with session_scope() as db:
        with pytest.raises(AccessDenied, match="ana is annotator"):
            gold.mark_gold(db, "ana", item, order=[[0], [1], [2]])
        with pytest.raises(RlhfError, match="missing"):
            gold.mark_gold(db, "eve", item, order=[[0], [1]])
        assert gold.mark_gold(db, "eve", item, order=[[2], [0, 1]])[1] == "marked"
    with session_scope() as db:
        assert gold.mark_gold(db, "eve", f"item:{item}", order=[[2], [0, 1]])[1] == "unchanged"
        assert gold.mark_gold(db, "eve", "rank:1:sft@v1", order=[[0], [1], [2]])[1] == "changed"
    with session_scope() as db:
        assert db.get(GoldItem, item).order == [[0], [1], [2]]
        assert db.scalar(select(func.count()).select_from(Review).where(Review.verdict == "gold")) == 2


def test_gold_items_come_at_the_gold_rate_and_never_count_toward_overlap(home):
    for i in range(6):
        candidates("p1", k=2, version=f"m{i}@v1")
    ids = sorted(rank_items().values())
    golds = set(ids[::2])
    with session_scope() as db:
        for item in golds:
            gold.mark_gold(db, "eve", item, order=[[1], [0]])
    set_settings(gold_rate=0.5, rank_overlap=1)
    ana, seen, normal = user_id("ana"), [], sorted(set(ids) - golds)
    for n in range(len(ids)):
        left_gold, left_normal = sorted(golds - set(seen)), [i for i in normal if i not in seen]
        gold_draw = queue.draw("gold", ana, n) < 0.5
        want = left_gold[0] if gold_draw and left_gold else (left_normal[0] if left_normal else None)
        assert claim("ana") == want, n
        if want is None:
            break
        seen.append(want)
    assert set(normal) <= set(seen) and set(seen) & golds  # the normal queue, and gold items only on gold draws
    set_settings(gold_rate=0)
    assert claim("bob") == normal[0]  # no gold share: no gold item
    set_settings(gold_rate=1.0)
    first = sorted(golds)[0]
    with session_scope() as db:
        db.get(LabelItem, first).done_count = 5  # far over N = 1: a gold item is served anyway
    assert claim("cy") == first


def test_a_write_item_is_gold_with_an_approved_demonstration(home):
    from rlhf.review import actions as review

    s = me("ana")
    h.write_next(s)
    demo = h.write_submit(s, "Paris.").id
    with session_scope() as db:
        item = db.scalar(select(Assignment.item_id).where(Assignment.result_id == demo, Assignment.kind == "write"))
        with pytest.raises(RlhfError, match="is pending"):
            gold.mark_gold(db, "eve", item, demonstration_id=demo)
    with session_scope() as db:
        review.approve(db, "eve", "demonstration", demo)
        assert gold.mark_gold(db, "eve", item, demonstration_id=demo)[1] == "marked"
    set_settings(gold_rate=1.0, write_overlap=1)  # the item has its one writer, yet as gold it comes to bob first
    assert h.write_next(me("bob")).assignment_id is not None
    with session_scope() as db:
        bob = db.scalar(select(User).where(User.name == "bob"))
        assert db.scalar(select(Assignment.item_id).where(Assignment.user_id == bob.id)) == item


def test_gold_accuracy_and_agreement_show_on_the_admin_page_and_in_snapshots(home):
    candidates("p1", k=3)
    candidates("p2", k=3)
    items = rank_items()
    set_settings(gold_rate=0, rank_overlap=3)
    for name, reverse in (("ana", False), ("bob", False), ("cy", True)):
        assert rank_in_item_order(name, reverse) == items["p1:sft@v1"]
    with session_scope() as db:
        dv1, _ = registry.snapshot(db, "preferences", registry.SnapshotOptions(include_pending=True))
        q1 = dv1.lineage["annotator_quality"]
    # ana's and bob's others (one agreeing, one reversed) average to a full tie: no tau; cy's others both disagree
    assert q1["ana"] == {"gold_correct": 0, "gold_answered": 0, "consensus_items": 0, "consensus_tau": None}
    assert q1["cy"] == {"gold_correct": 0, "gold_answered": 0, "consensus_items": 1, "consensus_tau": -1.0}
    with session_scope() as db:  # p2 becomes gold; ana agrees with its reference, bob reverses it
        gold.mark_gold(db, "eve", items["p2:sft@v1"], order=[[0], [1], [2]])
    set_settings(gold_rate=1.0, quality_threshold=0.5)
    assert rank_in_item_order("ana") == rank_in_item_order("bob", reverse=True) == items["p2:sft@v1"]
    rows = {r[0]: r for r in admin.admin_quality(me("root"))}
    assert rows["ana"][1:4] == [1, 1, 1.0] and rows["ana"][6] == ""
    assert rows["bob"][1:4] == [1, 0, 0.0] and rows["bob"][6] == "below 0.5"
    with pytest.raises(AccessDenied):
        admin.admin_quality(me("eve"))
    with session_scope() as db:
        dv2, created = registry.snapshot(db, "preferences", registry.SnapshotOptions(include_pending=True))
        q2 = dv2.lineage["annotator_quality"]
    assert created and dv2.content_hash != dv1.content_hash  # two new rankings: new rows
    assert (q2["ana"]["gold_correct"], q2["ana"]["gold_answered"], q2["bob"]["gold_correct"]) == (1, 1, 0)
    with session_scope() as db:  # the numbers live in the lineage only: the same rows keep their version
        gold.mark_gold(db, "eve", items["p2:sft@v1"], order=[[2], [1], [0]])
        dv3, created = registry.snapshot(db, "preferences", registry.SnapshotOptions(include_pending=True))
    assert not created and dv3.ref == dv2.ref


def test_experts_mark_gold_from_the_adjudication_page_and_the_cli(home):
    candidates("p1", k=2)
    item = rank_items()["p1:sft@v1"]
    set_settings(rank_overlap=4, gold_rate=0)
    for name, reverse in (("ana", False), ("bob", True), ("cy", False), ("root", True)):
        rank_in_item_order(name, reverse)
    with session_scope() as db:
        pid, rids = db.get(LabelItem, item).prompt_id, db.get(LabelItem, item).response_ids
    view = review_handlers.adjudication_queue(me("eve"))
    assert view.prompt_id == pid and view.response_ids == sorted(rids)
    v = review_handlers.mark_gold(me("eve"), pid, [2, 1])
    assert "Marked rank:1:sft@v1 as gold" in v.message
    assert "already gold" in review_handlers.mark_gold(me("eve"), pid, [2, 1]).message
    with session_scope() as db:
        assert db.get(GoldItem, item).order == [[rids.index(sorted(rids)[1])], [rids.index(sorted(rids)[0])]]
    out = run_cli("review", "gold", str(item), "--reviewer", "eve", "--ranks", "1 2")
    assert out.returncode == 0 and "changed gold by eve, reference order [[0], [1]]" in out.stdout, out.stderr
    out = run_cli("review", "gold", str(item), "--reviewer", "ana", "--ranks", "1 2")
    assert out.returncode == 2 and "ana is annotator" in out.stderr
    with session_scope() as db:
        r = db.scalar(select(Ranking).where(Ranking.annotator_id == db.scalar(select(User.id).where(User.name == "bob"))))
    out = run_cli("review", "gold", "rank:1:sft@v1", "--reviewer", "eve", "--ranking", str(r.id))
    assert out.returncode == 0 and "changed gold" in out.stdout and "[[1], [0]]" in out.stdout


def test_mark_gold_on_rankings_imported_before_the_queue_had_their_item(home):
    from rlhf.data.records import Approval, add_ranking

    ids = candidates("p3", k=2)
    with session_scope() as db:
        p3 = db.scalar(select(Prompt).where(Prompt.external_id == "p3"))
        for who, order in (("ana", [[0], [1]]), ("bob", [[1], [0]])):
            add_ranking(db, p3, ids, order, annotator=who, key=f"import:{who}", approved=Approval("seed"))
        assert not db.scalar(select(func.count()).select_from(LabelItem))  # nobody opened the app yet
    assert "as gold" in review_handlers.mark_gold(me("eve"), p3.id, [1, 2]).message
    with session_scope() as db:
        (g,) = db.scalars(select(GoldItem)).all()
        assert g.order == [[0], [1]] and db.get(LabelItem, g.item_id).response_ids == ids


# --------------------------------------------------------------------------- part 2: feedback after the submit


def test_feedback_comes_only_after_the_submit_with_letters_as_shown(home):
    rids = candidates("p1", k=3)
    item = rank_items()["p1:sft@v1"]
    prioritize({item: 0.5}, {item: {"responses": {str(rids[0]): [0.1, 0.3], str(rids[1]): [2.0, 2.0], str(rids[2]): -1}}})
    set_settings(rank_overlap=3, gold_rate=0)
    s = me("ana")
    first = h.rank_next(s)
    assert first.feedback is None and first.feedback_html() == ""  # before the submit: nothing at all
    with session_scope() as db:
        shown = queue.shown_order(user_id("ana"), db.get(LabelItem, item))
    letter = {rid: "ABC"[i] for i, rid in enumerate(shown)}
    rank_in_item_order("ana", s=s)
    fb = h.rank_next(s).feedback
    assert fb.yours == " > ".join(letter[r] for r in rids)
    assert fb.model == " > ".join(letter[r] for r in (rids[1], rids[0], rids[2]))  # mean score, higher first
    assert fb.consensus is None and fb.others == 0 and "appears once" in fb.agreement.line()
    html = h.rank_next(s).feedback_html()
    assert 'id="feedback-panel"' in html and "sft@v1" not in html and "rm@v1" not in html
    rank_in_item_order("bob")
    rank_in_item_order("cy")
    fb = h.rank_next(s).feedback
    assert fb.others == 2 and fb.consensus == " > ".join(f"{letter[r]} ({n}.0)" for n, r in enumerate(rids, 1))
    assert h.my_agreement(s) == "Your agreement with consensus: Kendall tau-b +1.00 over 1 item(s) (1 = same order, 0 = unrelated)."
    h.undo(s, "rank")  # the ranked item is back on screen: no feedback about it while it is
    assert h.rank_next(s).feedback is None
    set_settings(show_feedback=False)
    rank_in_item_order("ana", reverse=True, s=s)  # a correction, stored
    assert h.rank_next(s).feedback is None and h.my_agreement(s) == ""
