"""Every action of the app as a plain function `(session, inputs) -> view`, testable without a server.

Each handler: (1) reloads the caller and checks their role (`rlhf.data.accounts.require`), (2) does
its work in ONE store transaction (`session_scope`: all or nothing), storing rows through
`rlhf.data.records` (which checks the text and the order), (3) returns a small dataclass view that
the gradio layout (`app.py`) and the JSON API (`api.py`) both present. Mistakes a person can fix
raise `RlhfError` with a one-line message; a wrong role raises `AccessDenied` (PermissionError).

Idempotency: a submit names its assignment (the item on that tab's screen). The assignment flips
from `assigned` to `done` with a conditional UPDATE in the same transaction as the new row, so a
double click, a second tab or a retried request finds it done and stores nothing
(`Receipt.status == "duplicate"`); the unique `content_hash` of the row (its content plus the key
`label_item:<item>:<annotator>`) is a second guard in the database itself.

Undo, previous item and corrections (`history.py`): a finished item can come back on screen; a
new submit on it stores a new version (the key gets `:v2` / `:after:<old id>`, the old row becomes
`superseded`), the same answer again or a Skip keeps the earlier one. Which item is on screen is
the tab's (`UserSession`): an item the annotator reopened stays there until it is finished.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import select

from labeling_app import feedback, history, queue, render
from labeling_app.state import UserSession
from rlhf.data import records
from rlhf.data.accounts import ADMINS, LABELERS, AccessDenied, require
from rlhf.data.formats import MAX_TEXT_CHARS
from rlhf.data.store import session_scope
from rlhf.data.store.app_models import Assignment, LabelItem
from rlhf.data.store.models import ROLES, Prompt, Response, User
from rlhf.errors import RlhfError

REASON_CHARS = 300  # the optional one-line reason of a ranking


# --------------------------------------------------------------------------- views


@dataclass(frozen=True)
class Me:
    name: str
    role: str
    pages: tuple[str, ...]  # the pages this role may use


@dataclass
class Page:
    """What both labeling pages show beside the item: guidelines, progress, pace, feedback, undo."""

    guidelines: str = ""  # markdown, written by an admin (Write and Rank have their own)
    guidelines_version: int = 1
    progress: queue.Progress = queue.Progress(0, 0, 0)
    pace: history.Pace | None = None
    message: str = ""  # feedback on the last action (text, never markup)
    notice: str = ""  # e.g. "the guidelines changed"
    undo_id: int | None = None  # the item finished last on this tab: Undo brings it back (within the window)
    correcting: int | None = None  # the id of the earlier answer this item would replace

    def heading(self, kind: str) -> str:
        return f"{kind.title()} guidelines · version {self.guidelines_version}"


@dataclass
class WriteView(Page):
    assignment_id: int | None = None  # None: nothing left to write
    prompt_ref: str = ""  # the prompt's external id
    messages: list = field(default_factory=list)  # the conversation so far; the last one is the user's
    draft: str = ""  # restored text of an earlier "save draft" (or of the answer being corrected)

    def conversation_html(self) -> str:
        if self.assignment_id is None:
            return render.notice("Nothing left to write right now: thank you! New prompts appear here when an admin adds them.")
        return render.conversation(self.messages, title=f"Prompt {self.prompt_ref} · {len(self.messages)} message(s)",
                                   item=f"write:{self.assignment_id}")


@dataclass
class RankView(Page):
    assignment_id: int | None = None  # None: nothing left to rank
    prompt_ref: str = ""
    messages: list = field(default_factory=list)
    candidates: list[str] = field(default_factory=list)  # answer texts in this person's shown order (A, B, ...)
    ranks: list = field(default_factory=list)  # a correction: the earlier rank of each shown answer, else empty
    all_bad: bool = False
    reason: str = ""
    feedback: feedback.Feedback | None = None  # on the item ranked last on this tab, only after its submit

    @property
    def k(self) -> int:
        return len(self.candidates)

    def conversation_html(self) -> str:
        if self.assignment_id is None:
            return render.notice("Nothing left to rank right now: thank you! New candidates appear here after an admin generates them.")
        return render.conversation(self.messages, title=f"Prompt {self.prompt_ref} · rank {self.k} answers",
                                   item=f"rank:{self.assignment_id}")

    def candidate_html(self) -> list[str]:
        return [render.candidate(i, t) for i, t in enumerate(self.candidates)]

    def feedback_html(self) -> str:
        return self.feedback.html() if self.feedback is not None else ""


@dataclass(frozen=True)
class Receipt:
    status: str  # stored | duplicate | skipped | saved | kept | reopened
    kind: str  # demonstration | ranking | skip | draft | undo
    id: int | None = None  # the stored row (the assignment for skip, draft, undo)
    message: str = ""


def as_dict(view) -> dict:
    return dataclasses.asdict(view)


# --------------------------------------------------------------------------- helpers


def whoami(s: UserSession) -> Me:
    with session_scope() as db:
        user = require(db, s.username, ROLES, "whoami")
        pages = ("write", "rank") + (("admin",) if user.role in ADMINS else ())
        return Me(user.name, user.role, pages)


def _mine(db, user: User, assignment_id: int | None, kind: str) -> Assignment:
    if assignment_id is None:
        raise RlhfError(f"no {kind} item on screen: reload the page to get the next one")
    a = db.get(Assignment, int(assignment_id))
    if a is None or a.kind != kind:
        raise RlhfError(f"{kind} item #{assignment_id} does not exist: reload the page")
    if a.user_id != user.id:
        raise AccessDenied(f"{kind} item #{assignment_id} is assigned to someone else")
    return a


def _key(item: LabelItem, user: User, earlier=None) -> str:
    """Where an app row comes from, for its content hash: this person's answer to this item (and what it corrects)."""
    key = f"label_item:{item.id}:{user.name}"
    if earlier is None:
        return key
    return f"{key}:v{earlier.version + 1}" if hasattr(earlier, "version") else f"{key}:after:{earlier.id}"


def _one_line(text: str | None, limit: int) -> str | None:
    line = " ".join((text or "").split())
    return line[:limit] or None


def _on_screen(db, user: User, s: UserSession, kind: str) -> Assignment | None:
    """The tab's item when it is still open and the caller's (an item they reopened stays on screen)."""
    aid = getattr(s, f"{kind}_assignment")
    a = db.get(Assignment, int(aid)) if aid not in (None, "") else None
    return a if a is not None and a.user_id == user.id and a.kind == kind and a.status == "assigned" else None


def _page(db, s: UserSession, user: User, kind: str, settings: dict, message: str) -> dict:
    """The Page fields of a view: guidelines (with a notice when their version moved on this tab), progress, pace."""
    text = settings["guidelines"] if kind == "write" else settings.get("rank_guidelines") or settings["guidelines"]
    version = int(settings.get(f"{kind}_guidelines_version", 1))
    seen = s.guidelines_seen.get(kind)
    s.guidelines_seen = {**s.guidelines_seen, kind: version}
    notice = (f"The {kind.title()} guidelines changed (now version {version}): please read them before you go on."
              if seen is not None and seen != version else "")
    return dict(guidelines=text, guidelines_version=version, progress=queue.progress(db, user, kind, settings),
                pace=history.pace(db, user, kind, settings.get("session_goal")), message=message, notice=notice,
                undo_id=getattr(s, f"last_{kind}"))


def _next_item(db, s: UserSession, kind: str, message: str):
    """(user, open assignment or None, its item, its prompt, page fields) for the caller's `kind` item on screen
    (else the next one: this leases it); the tab's session remembers which assignment is on screen."""
    user = require(db, s.username, LABELERS, kind)
    a = _on_screen(db, user, s, kind) or queue.next_assignment(db, user, kind)
    settings = queue.get_settings(db)
    setattr(s, f"{kind}_assignment", a.id if a is not None else None)
    item = db.get(LabelItem, a.item_id) if a is not None else None
    prompt = db.get(Prompt, item.prompt_id) if item is not None else None
    page = _page(db, s, user, kind, settings, message)
    earlier = history.correcting(db, a) if a is not None else None
    if earlier is not None:
        page["correcting"] = earlier.id
        page["notice"] = (page["notice"] + " " if page["notice"] else "") + (
            "You are changing an answer you submitted: Submit stores it as a new version (the earlier one is kept); "
            "Skip keeps the earlier answer.")
    return user, a, item, prompt, page, earlier


# --------------------------------------------------------------------------- write


def write_next(s: UserSession, message: str = "") -> WriteView:
    """The prompt on screen, else the next one to answer (the open one first, with its draft), and the guidelines."""
    with session_scope() as db:
        user, a, item, prompt, page, earlier = _next_item(db, s, "write", message)
        if a is None:
            return WriteView(**page)
        draft = (a.draft or {}).get("text", "") if isinstance(a.draft, dict) else ""
        if earlier is not None and not draft:
            draft = earlier.messages[-1]["content"]
        return WriteView(**page, assignment_id=a.id, prompt_ref=prompt.external_id, messages=list(prompt.messages),
                         draft=draft)


def write_submit(s: UserSession, text: str) -> Receipt:
    """Store the answer on screen as a pending demonstration (one transaction; a repeat is a no-op)."""
    with session_scope() as db:
        user = require(db, s.username, LABELERS, "write")
        a = _mine(db, user, s.write_assignment, "write")
        if a.status == "done":
            return Receipt("duplicate", "demonstration", a.result_id, "Already submitted: nothing stored twice.")
        if a.status == "skipped":
            raise RlhfError("you skipped this prompt: it cannot be submitted any more")
        answer = (text or "").strip()
        if not answer:  # the page's hint; size and NUL are the writer's checks (rlhf.data.formats)
            raise RlhfError("the answer is empty: write the ideal answer, or skip (Shift+S)")
        item = db.get(LabelItem, a.item_id)
        prompt = db.get(Prompt, item.prompt_id)
        earlier = history.correcting(db, a)
        if earlier is not None and earlier.messages[-1]["content"].strip() == answer:
            history.keep_earlier(db, a)
            return _finished(s, "write", a, Receipt("kept", "demonstration", earlier.id, "Unchanged: your earlier answer stands."))
        if not queue.complete(db, a, "done"):  # a twin request got there first: name the row it stored
            db.refresh(a)
            return Receipt("duplicate", "demonstration", a.result_id, "Already submitted: nothing stored twice.")
        d, created = records.add_demonstration(db, prompt, answer, annotator=user, key=_key(item, user, earlier),
                                               parent=earlier, seconds_spent=queue.seconds_on_screen(a),
                                               where=f"your answer to {prompt.external_id}")
        a.result_type, a.result_id, a.draft = "demonstration", d.id, None
        if not created:
            return Receipt("duplicate", "demonstration", d.id, "Already submitted: nothing stored twice.")
        if earlier is not None:
            history.hand_back_place(db, a)
            history.supersede(db, earlier, d.id, user, "demonstration")
        if queue.get_settings(db)["demos_as_candidates"]:
            records.add_response(db, prompt, answer, origin="human",
                                 generation={"annotator_id": user.id, "demonstration_id": d.id})
        what = f"version {d.version} of your answer" if earlier is not None else "answer"
        return _finished(s, "write", a, Receipt("stored", "demonstration", d.id, f"Saved {what} to {prompt.external_id}."))


def write_save_draft(s: UserSession, text: str) -> Receipt:
    with session_scope() as db:
        user = require(db, s.username, LABELERS, "write")
        a = _mine(db, user, s.write_assignment, "write")
        if a.status != "assigned":
            return Receipt("duplicate", "draft", a.id, "This prompt is already finished.")
        a.draft = {"text": (text or "")[:MAX_TEXT_CHARS]}
        return Receipt("saved", "draft", a.id, f"Draft saved {dt.datetime.now():%H:%M:%S}.")


def write_skip(s: UserSession, reason: str = "", text: str | None = None) -> Receipt:
    """Skip the prompt on screen; `text` (unsaved answer) is kept as its draft, so Undo brings it back."""
    return _skip(s, "write", reason, text)


def _finished(s: UserSession, kind: str, a: Assignment, receipt: Receipt) -> Receipt:
    setattr(s, f"last_{kind}", a.id)  # what Undo brings back
    return receipt


def _skip(s: UserSession, kind: str, reason: str, text: str | None = None) -> Receipt:
    with session_scope() as db:
        user = require(db, s.username, LABELERS, kind)
        a = _mine(db, user, s.write_assignment if kind == "write" else s.rank_assignment, kind)
        if a.status == "assigned" and a.result_id is not None:  # a reopened submitted item: its answer stands
            history.keep_earlier(db, a)
            return _finished(s, kind, a, Receipt("kept", "skip", a.id, "Kept your earlier answer."))
        if text and text.strip() and a.status == "assigned":
            a.draft = {"text": text[:MAX_TEXT_CHARS]}
        if a.status != "assigned" or not queue.complete(db, a, "skipped", _one_line(reason, REASON_CHARS)):
            return Receipt("duplicate", "skip", a.id, "Already finished.")
        return _finished(s, kind, a, Receipt("skipped", "skip", a.id, "Skipped: it will not come back to you (Undo: U)."))


# --------------------------------------------------------------------------- rank


def rank_next(s: UserSession, message: str = "") -> RankView:
    """The candidate set on screen, else the next one: K answers shuffled for this person, model names hidden."""
    with session_scope() as db:
        user, a, item, prompt, page, earlier = _next_item(db, s, "rank", message)
        last = s.last_rank if a is None or s.last_rank != a.id else None  # never about the item on screen
        if queue.get_settings(db)["show_feedback"] and last is not None:
            page["feedback"] = feedback.for_assignment(db, user, last)
        if a is None:
            return RankView(**page)
        texts = dict(db.execute(select(Response.id, Response.text).where(Response.id.in_(item.response_ids))).all())
        shown = queue.shown_order(user.id, item)
        v = RankView(**page, assignment_id=a.id, prompt_ref=prompt.external_id, messages=list(prompt.messages),
                     candidates=[texts[r] for r in shown])
        if earlier is not None:
            place = {earlier.response_ids[i]: str(n) for n, group in enumerate(earlier.order, 1) for i in group}
            v.ranks = [None if earlier.all_bad and len(earlier.order) == 1 else place.get(r) for r in shown]
            v.all_bad, v.reason = bool(earlier.all_bad), earlier.reason or ""
        return v


def rank_submit(s: UserSession, ranks: list, all_bad: bool = False, reason: str = "") -> Receipt:
    """Store the ranking on screen: `ranks[i]` is the rank (1 = best, equal = tie) of shown answer i."""
    with session_scope() as db:
        user = require(db, s.username, LABELERS, "rank")
        a = _mine(db, user, s.rank_assignment, "rank")
        if a.status == "done":
            return Receipt("duplicate", "ranking", a.result_id, "Already submitted: nothing stored twice.")
        if a.status == "skipped":
            raise RlhfError("you skipped this item: it cannot be submitted any more")
        item = db.get(LabelItem, a.item_id)
        shown = queue.shown_order(user.id, item)
        order = queue.ranks_to_order(ranks, shown, list(item.response_ids), k=len(shown), all_bad=bool(all_bad))
        why = _one_line(reason, REASON_CHARS)
        earlier = history.correcting(db, a)
        if earlier is not None and (earlier.order, bool(earlier.all_bad), earlier.reason) == (order, bool(all_bad), why):
            history.keep_earlier(db, a)
            return _finished(s, "rank", a, Receipt("kept", "ranking", earlier.id, "Unchanged: your earlier ranking stands."))
        if not queue.complete(db, a, "done"):  # a twin request got there first: name the row it stored
            db.refresh(a)
            return Receipt("duplicate", "ranking", a.result_id, "Already submitted: nothing stored twice.")
        prompt = db.get(Prompt, item.prompt_id)
        r, created = records.add_ranking(db, prompt, list(item.response_ids), order, annotator=user,
                                         key=_key(item, user, earlier), all_bad=bool(all_bad), reason=why,
                                         shown_order=shown, seconds_spent=queue.seconds_on_screen(a))
        a.result_type, a.result_id = "ranking", r.id
        if not created:
            return Receipt("duplicate", "ranking", r.id, "Already submitted: nothing stored twice.")
        if earlier is not None:
            history.hand_back_place(db, a)
            history.supersede(db, earlier, r.id, user, "ranking")
        what = "your corrected ranking" if earlier is not None else "ranking"
        return _finished(s, "rank", a, Receipt("stored", "ranking", r.id, f"Saved {what} of {prompt.external_id}."))


def rank_skip(s: UserSession, reason: str = "") -> Receipt:
    return _skip(s, "rank", reason)


def progress(s: UserSession, kind: str) -> queue.Progress:
    with session_scope() as db:
        user = require(db, s.username, LABELERS, kind)
        return queue.progress(db, user, kind)


# --------------------------------------------------------------------------- undo, previous, my items


def undo(s: UserSession, kind: str) -> Receipt:
    """Bring back the item finished last on this tab (within history.UNDO_SECONDS); it is then on screen."""
    with session_scope() as db:
        user = require(db, s.username, LABELERS, kind)
        a = history.undo(db, user, getattr(s, f"last_{kind}"), kind)
        setattr(s, f"{kind}_assignment", a.id)
        setattr(s, f"last_{kind}", None)
        return Receipt("reopened", "undo", a.id, "Undone: the item is back on screen.")


def previous(s: UserSession, kind: str) -> Receipt:
    """Bring back the last item finished on this page (any time; a submitted one while still pending review)."""
    with session_scope() as db:
        user = require(db, s.username, LABELERS, kind)
        a = history.previous(db, user, kind)
        if a is None:
            raise RlhfError("no earlier item to go back to (reviewed answers can no longer change)")
        setattr(s, f"{kind}_assignment", a.id)
        return Receipt("reopened", "undo", a.id, "Your previous item is back on screen.")


def my_agreement(s: UserSession) -> str:
    """The caller's running agreement with consensus, one line ("" when the admin turned feedback off)."""
    with session_scope() as db:
        user = require(db, s.username, LABELERS, "my agreement")
        return feedback.agreement(db, user).line() if queue.get_settings(db)["show_feedback"] else ""


def my_items(s: UserSession) -> list[history.MyItem]:
    """The caller's finished items, newest first (the "My items" page)."""
    with session_scope() as db:
        user = require(db, s.username, LABELERS, "my items")
        return history.recent(db, user)


def reopen(s: UserSession, assignment_id) -> tuple[str, Receipt]:
    """Open one of the caller's items again to correct it: (its page, receipt). It is then on that page's screen."""
    with session_scope() as db:
        user = require(db, s.username, LABELERS, "correct an item")
        a = history.reopen(db, user, assignment_id)
        setattr(s, f"{a.kind}_assignment", a.id)
        return a.kind, Receipt("reopened", "undo", a.id, "Opened again: change it and submit, or Skip to keep it as it was.")
