"""An annotator's own recent work: undo, previous item, "my items", corrections, and their pace.

What Label Studio and Argilla users expect, on top of the queue (`queue.py`):

- undo (`undo`): within `UNDO_SECONDS` of a submit or a skip, the item comes back on screen;
- previous item (`previous`): the last item finished on a page comes back, however long ago;
- my items (`recent`): the finished items, newest first, each one correctable (`reopen`) while
  no expert has reviewed its answer;
- pace (`pace`): items done today toward the daily goal, median seconds per item.

Reopening flips a finished assignment back to `assigned` with a conditional UPDATE (the pattern of
`queue.complete`: a double click or a second tab reopens once). A reopened *submitted* item keeps
its result (`result_id`) as "the version being corrected" and keeps its overlap place (`done_count`
is not touched): the earlier answer stands until a new one replaces it. The handlers then either
store the correction as a new version (`records` writes it, the old row becomes `superseded`, a
Review row `correct` links them: nothing is overwritten) or, on Skip, keep the earlier answer
(`keep_earlier`). A reopened *skipped* item is simply open again, with the text it had (a skip
keeps the unsaved text as the draft).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from rlhf.data.store.app_models import Assignment, LabelItem
from rlhf.data.store.models import Demonstration, Prompt, Ranking, User, utcnow
from rlhf.errors import RlhfError

UNDO_SECONDS = 30  # how long after a submit or skip the Undo button (key U) brings the item back
RECENT_LIMIT = 30  # rows in "My items"
DEFAULT_GOAL = 50  # items a day, when the admin has not set `session_goal`
RESULTS = {"demonstration": Demonstration, "ranking": Ranking}


def result_row(db: Session, a: Assignment):
    """The Demonstration or Ranking an assignment stored (None for a skip)."""
    model = RESULTS.get(a.result_type or "")
    return db.get(model, a.result_id) if model is not None and a.result_id is not None else None


def _mine(db: Session, user: User, assignment_id, kind: str | None = None) -> Assignment:
    try:
        a = db.get(Assignment, int(assignment_id))
    except (TypeError, ValueError):
        a = None
    if a is None or a.user_id != user.id or (kind is not None and a.kind != kind):
        raise RlhfError(f"item #{assignment_id} is not one of your {kind or ''} items: reload the page")
    return a


def reopen(db: Session, user: User, assignment_id, kind: str | None = None, within: float | None = None) -> Assignment:
    """Put one of the user's finished items back on their screen (a no-op when it is open already).

    `within`: only if it finished less than that many seconds ago (the undo window). A submitted
    item can be reopened while its answer is still pending review; once an expert has approved,
    rejected or replaced it, the answer is theirs to judge and stays as it is.
    """
    a = _mine(db, user, assignment_id, kind)
    if a.status == "assigned":
        return a
    now = utcnow()
    if within is not None and (a.done_at is None or (now - a.done_at).total_seconds() > within):
        raise RlhfError(f"undo is possible for {int(within)} s after a submit or skip; "
                        "open the item from My items to correct it")
    row = result_row(db, a)
    if a.status == "done" and (row is None or row.status != "pending"):
        state = row.status if row is not None else "missing"
        raise RlhfError(f"your answer to this item is {state}: an expert has reviewed it, so it can no longer be changed")
    done = db.execute(update(Assignment).where(Assignment.id == a.id, Assignment.status == a.status)
                      .values(status="assigned", shown_at=now).execution_options(synchronize_session=False))
    if done.rowcount == 1:
        for key, value in (("status", "assigned"), ("shown_at", now)):
            set_committed_value(a, key, value)
    else:
        db.refresh(a)
    return a


def undo(db: Session, user: User, assignment_id, kind: str) -> Assignment:
    """The undo button: reopen the item finished last on this page, within UNDO_SECONDS."""
    if assignment_id in (None, ""):
        raise RlhfError("nothing to undo on this page yet")
    return reopen(db, user, assignment_id, kind, within=UNDO_SECONDS)


def previous(db: Session, user: User, kind: str) -> Assignment | None:
    """Reopen the user's most recently finished `kind` item that can still change; None when there is none."""
    finished = db.scalars(select(Assignment).where(Assignment.user_id == user.id, Assignment.kind == kind,
                                                   Assignment.status.in_(("done", "skipped")))
                          .order_by(Assignment.done_at.desc(), Assignment.id.desc()).limit(RECENT_LIMIT))
    for a in finished:
        row = result_row(db, a)
        if a.status == "skipped" or (row is not None and row.status == "pending"):
            return reopen(db, user, a.id, kind)
    return None


def correcting(db: Session, a: Assignment):
    """The earlier result an open assignment is correcting (reopened after a submit), else None."""
    return result_row(db, a) if a.status == "assigned" and a.result_id is not None else None


def keep_earlier(db: Session, a: Assignment) -> bool:
    """Close a reopened submitted item without a new version: the earlier answer stands (Skip on a correction)."""
    done = db.execute(update(Assignment).where(Assignment.id == a.id, Assignment.status == "assigned",
                                               Assignment.result_id.is_not(None))
                      .values(status="done", done_at=utcnow()).execution_options(synchronize_session=False))
    return done.rowcount == 1


def hand_back_place(db: Session, a: Assignment) -> None:
    """After `queue.complete` counted a correction as a new submit: the item's place was already counted once."""
    db.execute(update(LabelItem).where(LabelItem.id == a.item_id, LabelItem.done_count > 0)
               .values(done_count=LabelItem.done_count - 1).execution_options(synchronize_session=False))


def supersede(db: Session, old, new_id: int, by: User, kind: str) -> None:
    """Mark the corrected row superseded (only while it is still pending: never under an expert's verdict)."""
    from rlhf.data.records import add_review

    model = RESULTS[kind]
    done = db.execute(update(model).where(model.id == old.id, model.status == "pending").values(status="superseded")
                      .execution_options(synchronize_session=False))
    if done.rowcount != 1:
        raise RlhfError(f"your earlier {kind} was reviewed meanwhile: it can no longer be corrected")
    set_committed_value(old, "status", "superseded")
    add_review(db, kind, old.id, by, "correct", f"corrected by its annotator: {kind} {new_id} replaces it",
               {f"new_{kind}_id": new_id})


# --------------------------------------------------------------------------- my items


@dataclass(frozen=True)
class MyItem:
    assignment_id: int
    kind: str  # write | rank
    prompt_ref: str
    finished: str  # "HH:MM" today, else the date
    state: str  # submitted (pending review) | approved | rejected | corrected | skipped | open
    preview: str  # the answer's start, or the order as letters
    can_change: bool

    def row(self) -> list:
        return [self.finished, self.kind, self.prompt_ref, self.state, self.preview]


ITEM_COLUMNS = ["when", "page", "prompt", "state", "your answer"]
STATE_WORDS = {"pending": "submitted", "superseded": "corrected"}


def _preview(a: Assignment, row) -> str:
    if a.status == "skipped":
        return "(skipped)" + (f": {a.note}" if a.note else "")
    if isinstance(row, Demonstration):
        return " ".join(row.messages[-1]["content"].split())[:80]
    if isinstance(row, Ranking):
        letter = {rid: "ABCDEFGHI"[i] for i, rid in enumerate(row.shown_order or row.response_ids)}
        order = " > ".join(" = ".join(sorted(letter[row.response_ids[i]] for i in g)) for g in row.order)
        return ("all bad · " if row.all_bad else "") + order
    return ""


def recent(db: Session, user: User, limit: int = RECENT_LIMIT) -> list[MyItem]:
    """The user's finished items (and those reopened: they were finished once, `done_at` says when), newest first."""
    rows = db.execute(select(Assignment, Prompt.external_id).join(LabelItem, Assignment.item_id == LabelItem.id)
                      .join(Prompt, LabelItem.prompt_id == Prompt.id)
                      .where(Assignment.user_id == user.id,
                             (Assignment.status != "assigned") | Assignment.done_at.is_not(None))
                      .order_by(Assignment.done_at.desc(), Assignment.id.desc()).limit(limit)).all()
    today = utcnow().date()
    out = []
    for a, ref in rows:
        row = result_row(db, a)
        when = a.done_at.strftime("%H:%M" if a.done_at.date() == today else "%Y-%m-%d") if a.done_at else ""
        state = ("open" if a.status == "assigned" else "skipped" if a.status == "skipped"
                 else STATE_WORDS.get(row.status, row.status) if row is not None else "?")
        can = a.status == "skipped" or (a.status == "done" and row is not None and row.status == "pending")
        out.append(MyItem(a.id, a.kind, ref, when, state, _preview(a, row), can))
    return out


# --------------------------------------------------------------------------- pace


@dataclass(frozen=True)
class Pace:
    done_today: int
    goal: int  # items a day (the admin's `session_goal`)
    median_seconds: float | None  # over today's submitted items of this page

    @property
    def fraction(self) -> float:
        return min(1.0, self.done_today / self.goal) if self.goal else 0.0


def pace(db: Session, user: User, kind: str, goal: int | None) -> Pace:
    midnight = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    seconds = list(db.scalars(select(Assignment.seconds).where(Assignment.user_id == user.id, Assignment.kind == kind,
                                                               Assignment.status == "done",
                                                               Assignment.done_at >= midnight)))
    return Pace(len(seconds), int(goal or DEFAULT_GOAL), statistics.median(seconds) if seconds else None)
