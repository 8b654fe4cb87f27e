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
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import select

from labeling_app import queue, render
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
class WriteView:
    assignment_id: int | None  # None: nothing left to write
    prompt_ref: str = ""  # the prompt's external id
    messages: list = field(default_factory=list)  # the conversation so far; the last one is the user's
    draft: str = ""  # restored text of an earlier "save draft"
    guidelines: str = ""  # markdown, written by an admin
    progress: queue.Progress = queue.Progress(0, 0, 0)
    message: str = ""  # feedback on the last action

    def conversation_html(self) -> str:
        if self.assignment_id is None:
            return render.notice("Nothing left to write right now: thank you! New prompts appear here when an admin adds them.")
        return render.conversation(self.messages, title=f"Prompt {self.prompt_ref} · {len(self.messages)} message(s)")


@dataclass
class RankView:
    assignment_id: int | None  # None: nothing left to rank
    prompt_ref: str = ""
    messages: list = field(default_factory=list)
    candidates: list[str] = field(default_factory=list)  # answer texts in this person's shown order (A, B, ...)
    guidelines: str = ""
    progress: queue.Progress = queue.Progress(0, 0, 0)
    message: str = ""

    @property
    def k(self) -> int:
        return len(self.candidates)

    def conversation_html(self) -> str:
        if self.assignment_id is None:
            return render.notice("Nothing left to rank right now: thank you! New candidates appear here after an admin generates them.")
        return render.conversation(self.messages, title=f"Prompt {self.prompt_ref} · rank {self.k} answers")

    def candidate_html(self) -> list[str]:
        return [render.candidate(i, t) for i, t in enumerate(self.candidates)]


@dataclass(frozen=True)
class Receipt:
    status: str  # stored | duplicate | skipped | saved
    kind: str  # demonstration | ranking | skip | draft
    id: int | None = None  # the stored row
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


def _key(item: LabelItem, user: User) -> str:
    """Where an app row comes from, for its content hash: this person's answer to this item."""
    return f"label_item:{item.id}:{user.name}"


def _one_line(text: str | None, limit: int) -> str | None:
    line = " ".join((text or "").split())
    return line[:limit] or None


# --------------------------------------------------------------------------- write


def _next_item(db, s: UserSession, kind: str):
    """(user, open assignment or None, its item, its prompt, settings, progress) for the caller's next `kind` item;
    the tab's session remembers which assignment is on screen."""
    user = require(db, s.username, LABELERS, kind)
    a = queue.next_assignment(db, user, kind)
    settings = queue.get_settings(db)
    setattr(s, f"{kind}_assignment", a.id if a is not None else None)
    item = db.get(LabelItem, a.item_id) if a is not None else None
    prompt = db.get(Prompt, item.prompt_id) if item is not None else None
    return user, a, item, prompt, settings, queue.progress(db, user, kind, settings)


def write_next(s: UserSession, message: str = "") -> WriteView:
    """The next prompt to answer (the open one first, with its draft) and the guidelines."""
    with session_scope() as db:
        user, a, item, prompt, settings, progress = _next_item(db, s, "write")
        if a is None:
            return WriteView(None, guidelines=settings["guidelines"], progress=progress, message=message)
        draft = (a.draft or {}).get("text", "") if isinstance(a.draft, dict) else ""
        return WriteView(a.id, prompt.external_id, list(prompt.messages), draft, settings["guidelines"], progress, message)


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
            raise RlhfError("the answer is empty: write the ideal answer, or skip (S)")
        item = db.get(LabelItem, a.item_id)
        prompt = db.get(Prompt, item.prompt_id)
        if not queue.complete(db, a, "done"):  # a twin request got there first: name the row it stored
            db.refresh(a)
            return Receipt("duplicate", "demonstration", a.result_id, "Already submitted: nothing stored twice.")
        d, created = records.add_demonstration(db, prompt, answer, annotator=user, key=_key(item, user),
                                               seconds_spent=queue.seconds_on_screen(a),
                                               where=f"your answer to {prompt.external_id}")
        a.result_type, a.result_id, a.draft = "demonstration", d.id, None
        if not created:
            return Receipt("duplicate", "demonstration", d.id, "Already submitted: nothing stored twice.")
        if queue.get_settings(db)["demos_as_candidates"]:
            records.add_response(db, prompt, answer, origin="human",
                                 generation={"annotator_id": user.id, "demonstration_id": d.id})
        return Receipt("stored", "demonstration", d.id, f"Saved answer to {prompt.external_id}.")


def write_save_draft(s: UserSession, text: str) -> Receipt:
    with session_scope() as db:
        user = require(db, s.username, LABELERS, "write")
        a = _mine(db, user, s.write_assignment, "write")
        if a.status != "assigned":
            return Receipt("duplicate", "draft", a.id, "This prompt is already finished.")
        a.draft = {"text": (text or "")[:MAX_TEXT_CHARS]}
        return Receipt("saved", "draft", a.id, f"Draft saved {dt.datetime.now():%H:%M:%S}.")


def write_skip(s: UserSession, reason: str = "") -> Receipt:
    return _skip(s, "write", reason)


def _skip(s: UserSession, kind: str, reason: str) -> Receipt:
    with session_scope() as db:
        user = require(db, s.username, LABELERS, kind)
        a = _mine(db, user, s.write_assignment if kind == "write" else s.rank_assignment, kind)
        if a.status != "assigned" or not queue.complete(db, a, "skipped", _one_line(reason, REASON_CHARS)):
            return Receipt("duplicate", "skip", a.id, "Already finished.")
        return Receipt("skipped", "skip", a.id, "Skipped: it will not come back to you.")


# --------------------------------------------------------------------------- rank


def rank_next(s: UserSession, message: str = "") -> RankView:
    """The next candidate set to rank: K answers shuffled for this person, model names hidden."""
    with session_scope() as db:
        user, a, item, prompt, settings, progress = _next_item(db, s, "rank")
        if a is None:
            return RankView(None, guidelines=settings["guidelines"], progress=progress, message=message)
        texts = dict(db.execute(select(Response.id, Response.text).where(Response.id.in_(item.response_ids))).all())
        shown = queue.shown_order(user.id, item)
        return RankView(a.id, prompt.external_id, list(prompt.messages), [texts[r] for r in shown],
                        settings["guidelines"], progress, message)


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
        if not queue.complete(db, a, "done"):  # a twin request got there first: name the row it stored
            db.refresh(a)
            return Receipt("duplicate", "ranking", a.result_id, "Already submitted: nothing stored twice.")
        prompt = db.get(Prompt, item.prompt_id)
        r, created = records.add_ranking(db, prompt, list(item.response_ids), order, annotator=user, key=_key(item, user),
                                         all_bad=bool(all_bad), reason=_one_line(reason, REASON_CHARS), shown_order=shown,
                                         seconds_spent=queue.seconds_on_screen(a))
        a.result_type, a.result_id = "ranking", r.id
        if not created:
            return Receipt("duplicate", "ranking", r.id, "Already submitted: nothing stored twice.")
        return Receipt("stored", "ranking", r.id, f"Saved ranking of {prompt.external_id}.")


def rank_skip(s: UserSession, reason: str = "") -> Receipt:
    return _skip(s, "rank", reason)


def progress(s: UserSession, kind: str) -> queue.Progress:
    with session_scope() as db:
        user = require(db, s.username, LABELERS, kind)
        return queue.progress(db, user, kind)
