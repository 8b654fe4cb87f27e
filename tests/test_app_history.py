"""Undo, previous item, "my items", corrections as new versions, pace, inline mistakes, leases (issue 17), no browser.

Handlers and listeners are called as the plain functions the UI calls; the browser tests
(test_app_keyboard.py) drive the same paths through the keys.
"""

from __future__ import annotations

import datetime as dt
import logging
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from app_support import candidates, home, me  # noqa: F401 (home: fixture)
from labeling_app import app as ui
from labeling_app import handlers as h
from labeling_app import admin, history, queue, render, review_handlers, review_layout
from labeling_app.listeners import people_error
from labeling_app.state import UserSession
from rlhf.data.store import session_scope
from rlhf.data.store.app_models import Assignment, LabelItem
from rlhf.data.store.models import Demonstration, Ranking, Review
from rlhf.errors import RlhfError


def _assignments(name: str | None = None) -> list[tuple]:
    with session_scope() as db:
        q = select(Assignment).order_by(Assignment.id)
        return [(a.kind, a.status) for a in db.scalars(q) if name is None or a.user_id == _uid(db, name)]


def _uid(db, name):
    from rlhf.data.store.models import User

    return db.scalar(select(User.id).where(User.name == name))


def test_undo_a_submit_brings_the_answer_back_and_a_change_is_a_new_version(home):
    s = me("ana")
    first = h.write_next(s)
    stored = h.write_submit(s, "Paris is the capital.")
    assert h.write_next(s).prompt_ref == "p2"  # the next prompt is on screen (and leased)
    assert h.undo(s, "write").status == "reopened"
    back = h.write_next(s)
    assert (back.assignment_id, back.draft, back.correcting) == (first.assignment_id, "Paris is the capital.", stored.id)
    assert "new version" in back.notice
    assert h.write_submit(s, "Paris is the capital.").status == "kept"  # the same text again stores nothing
    assert h.undo(s, "write").status == "reopened"
    h.write_next(s)
    fixed = h.write_submit(s, "Paris is the capital of France.")
    assert fixed.status == "stored" and "version 2" in fixed.message
    with session_scope() as db:
        old, new = db.get(Demonstration, stored.id), db.get(Demonstration, fixed.id)
        assert (old.status, old.version, new.status, new.version, new.parent_id) == ("superseded", 1, "pending", 2, old.id)
        assert old.messages[-1]["content"] == "Paris is the capital."  # the earlier row is kept as it was
        (rev,) = db.scalars(select(Review).where(Review.item_id == old.id, Review.item_type == "demonstration")).all()
        assert (rev.verdict, rev.reviewer_name, rev.payload) == ("correct", "ana", {"new_demonstration_id": new.id})
        item = db.get(LabelItem, db.get(Assignment, first.assignment_id).item_id)
        assert item.done_count == 1  # a correction takes no second overlap place
    assert h.progress(s, "write").done_today == 1


def test_undo_has_a_window_and_reviewed_answers_stay_as_they_are(home):
    s = me("ana")
    h.write_next(s)
    stored = h.write_submit(s, "An answer.")
    with session_scope() as db:
        a = db.get(Assignment, s.last_write)
        a.done_at = a.done_at - dt.timedelta(seconds=history.UNDO_SECONDS + 1)
    with pytest.raises(RlhfError, match="undo is possible for 30 s"):
        h.undo(s, "write")
    review_handlers.review_approve(review_handlers.ReviewSession("eve"), f"demonstration:{stored.id}")
    with pytest.raises(RlhfError, match="approved: an expert has reviewed it"):
        h.reopen(s, s.last_write)
    assert h.my_items(s)[0].state == "approved" and not h.my_items(s)[0].can_change


def test_skip_keeps_unsaved_text_and_undo_restores_it(home):
    s = me("ana")
    first = h.write_next(s)
    assert h.write_skip(s, text="half an answer").status == "skipped"
    assert h.write_next(s).prompt_ref == "p2"
    h.undo(s, "write")
    back = h.write_next(s)
    assert (back.assignment_id, back.draft) == (first.assignment_id, "half an answer")
    assert h.write_submit(s, "half an answer, finished").status == "stored"
    assert _assignments("ana") == [("write", "done"), ("write", "assigned")]


def test_previous_item_and_my_items_correct_a_ranking_keeping_the_old_one(home):
    candidates("p1")
    candidates("p2")
    s = me("ana")
    v = h.rank_next(s)
    first = h.rank_submit(s, [2, 1, 3, 4], reason="B is right")
    h.rank_next(s)
    h.rank_skip(s)
    assert h.previous(s, "rank").status == "reopened"  # the skipped one comes back first (the newest)
    assert h.rank_next(s).prompt_ref == "p2"
    mine = h.my_items(s)
    assert [(m.kind, m.prompt_ref, m.state) for m in mine] == [("rank", "p2", "open"), ("rank", "p1", "submitted")]
    assert mine[1].preview == "B > A > C > D" and mine[1].can_change
    page, receipt = h.reopen(s, mine[1].assignment_id)
    again = h.rank_next(s)
    assert (page, again.assignment_id, again.ranks, again.reason) == ("rank", v.assignment_id, ["2", "1", "3", "4"], "B is right")
    second = h.rank_submit(s, [1, 1, 2, 3], reason="A and B tie")
    with session_scope() as db:
        old, new = db.get(Ranking, first.id), db.get(Ranking, second.id)
        assert (old.status, new.status, new.reason) == ("superseded", "pending", "A and B tie")
        assert new.content_hash != old.content_hash and new.shown_order == old.shown_order
    assert [m.state for m in h.my_items(s)] == ["submitted", "open"]  # the corrected one, newest first


def test_skip_on_a_reopened_submitted_item_keeps_the_earlier_answer(home):
    s = me("ana")
    h.write_next(s)
    stored = h.write_submit(s, "Keep me.")
    h.undo(s, "write")
    h.write_next(s)
    assert h.write_skip(s, text="changed my mind").status == "kept"
    with session_scope() as db:
        assert db.get(Demonstration, stored.id).status == "pending"
        assert db.get(Assignment, s.last_write).status == "done"


def test_pace_counts_today_and_the_median(home):
    s = me("ana")
    for text in ("one", "two", "three"):
        h.write_next(s)
        h.write_submit(s, text)
    with session_scope() as db:
        for a, sec in zip(db.scalars(select(Assignment).order_by(Assignment.id)), (10.0, 30.0, 20.0)):
            a.seconds = sec
    v = h.write_next(s)
    assert v.pace == history.Pace(done_today=3, goal=history.DEFAULT_GOAL, median_seconds=20.0)
    html = render.progress("write", v.progress, v.pace)
    assert "<b>3</b> answers today of a goal of <b>50</b>" in html and "median <b>20 s</b>" in html
    assert 'aria-valuenow="3"' in html and "width:6%" in html


def test_separate_guidelines_with_versions_and_a_notice_when_they_change(home):
    s = me("ana")
    v = h.rank_next(s)
    assert v.guidelines == queue.DEFAULTS["rank_guidelines"] and v.guidelines_version == 1 and not v.notice
    admin.admin_save_settings(me("root"), rank_guidelines="Correctness first.", session_goal=20)
    v = h.rank_next(s)
    assert (v.guidelines, v.guidelines_version, v.pace.goal) == ("Correctness first.", 2, 20)
    assert "Rank guidelines changed (now version 2)" in v.notice
    assert not h.rank_next(s).notice and h.write_next(s).guidelines_version == 1  # once; Write keeps its own


# --------------------------------------------------------------------------- the listeners: inline mistakes, leases


def test_mistakes_are_shown_inline_and_logged_as_one_line(home, caplog):
    candidates("p1", k=3)
    req = SimpleNamespace(username="ana")
    state = ui.on_rank_open(req, UserSession())[0]
    with caplog.at_level(logging.WARNING, logger="labeling_app"):
        out = ui.on_rank_submit(req, state, state.rank_assignment, "1", None, "2", *[None] * 6, False, "")
    assert len(out) == ui.RANK_OUTPUTS and 'class="app-msg app-msg-error"' in out[-2] and "missing B" in out[-2]
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("on_rank_submit mistake for ana: give every answer a rank") and line.endswith("missing B")
    assert not caplog.records[0].exc_info  # a line, not a traceback
    out = ui.on_write_submit(req, ui.on_write_open(req, state)[0], state.write_assignment, "  ")
    assert len(out) == ui.WRITE_OUTPUTS and "the answer is empty" in out[-2]


def test_error_text_is_text():
    err = people_error(RlhfError("user name '<b>x</b><img src=/probe>': use 1-64 letters"))
    assert "<b>" not in err.message and "<img" not in err.message and "&lt;b&gt;x&lt;/b&gt;" in err.message
    assert not err.print_exception
    gone = people_error(PermissionError("write: not logged in"))
    assert gone.title == "Session expired" and "log in again" in gone.message
    assert render.message("Saved answer to <img src=x>.", "ok") == (
        '<div class="app-msg app-msg-ok" role="status">Saved answer to &lt;img src=x&gt;.</div>')


@pytest.mark.parametrize("who, landing", [("eve", "review"), ("root", "admin"), ("ana", "write")])
def test_loading_the_page_leases_nothing_and_lands_by_role(home, who, landing):
    candidates("p1")
    req = SimpleNamespace(username=who)
    out = ui.on_load(req, UserSession())
    assert out[2].selected == landing and out[3]["visible"] == (who == "root")
    assert all(u["visible"] == (who != "ana") for u in out[4:])  # the expert tabs, in the same response
    assert _assignments() == []  # only the landing tab's select event loads a page (Review, Admin: no lease)
    ui.on_rank_open(req, out[0])
    assert _assignments() == [("rank", "assigned")]  # working on Rank takes an item


def test_ab_buttons_are_inactive_without_a_pair_and_closing_is_for_admins(home):
    view = review_layout._ab_out(review_handlers.ABView(None))
    assert [u["interactive"] for u in view[-3:]] == [False, False, False]
    with pytest.raises(PermissionError, match="needs the admin role"):
        review_handlers.ab_close(review_handlers.ReviewSession("eve"), 1)
    assert review_handlers.is_admin(review_handlers.ReviewSession("root"))
    assert not review_handlers.is_admin(review_handlers.ReviewSession("eve"))


def test_review_and_admin_mistakes_stay_next_to_their_controls(home):
    from labeling_app import admin_layout

    ana = me("ana")
    h.write_next(ana)
    stored = h.write_submit(ana, "An answer.")
    eve, rs = SimpleNamespace(username="eve"), review_handlers.ReviewSession()
    out = review_layout.on_reject(eve, rs, f"demonstration:{stored.id}", "  ", "", "", "")
    assert len(out) == 11 and "needs a reason" in out[9] and "app-msg-error" in out[9]  # no toast, the item stays
    root = SimpleNamespace(username="root")
    values = dict(admin.FORM_DEFAULTS, rank_overlap=0)
    msg, counts = admin_layout.on_admin_save_settings(root, UserSession(), *values.values())
    assert msg == "error: rank_overlap: 0 is outside 1..50" and counts["__type__"] == "update"
