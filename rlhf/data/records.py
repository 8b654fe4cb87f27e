"""The one writer per row kind: users, prompts, responses, demonstrations, rankings and their reviews.

Every path that stores one of these rows (the imports, the app's submits, the expert's edit and
adjudication, the simulated annotators, A/B sessions, generation) calls the writer here, so a row
is checked, hashed and de-duplicated by one rule wherever it comes from:

- validation: the public checks of `rlhf.data.formats` (text non-empty, under the size limit, no
  NUL; an order names every response exactly once); a failure is an `InputError` naming where
  and the field.
- `content_hash`, one rule per kind (`demonstration_hash`, `ranking_hash`): the content an
  imported file gives, so re-importing an old file finds its duplicates, plus a `key` naming
  where a row made elsewhere comes from (`label_item:12:ana`, `edit:3->5`,
  `adjudicate:q1:eve:...`). Two submits of the same thing from the same place share a hash.
- duplicates: a writer returns `Written(row, created)`. With `duplicate="return"` (imports,
  submits, adjudication: a repeat is a no-op) `row` is the stored twin and `created` is False;
  with `duplicate="raise"` (an expert's edit, which must not silently point at another row) a
  `DuplicateError` names the stored row.
- approval: a row stored as approved carries an `Approval` saying who approved it and why; the
  writer adds that Review row in the same transaction. Who may approve is the caller's check
  (`rlhf.data.accounts.require`) before it writes.

The writers only `flush`: the caller's transaction (`session_scope`) commits or rolls back all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from rlhf.data.formats import Checker, check_order, check_prompt, check_text, content_hash
from rlhf.data.store.models import Demonstration, Prompt, Ranking, Response, Review, User
from rlhf.errors import InputError, RlhfError

HELDOUT_TAG = "heldout"
"""a prompt with this tag goes to the held-out split"""

OnDuplicate = Literal["return", "raise"]


class Written(NamedTuple):
    row: Any  # the new row, or the stored twin when `created` is False
    created: bool


class DuplicateError(RlhfError):
    """The row already exists (same content hash); `row_id` is the stored one."""

    def __init__(self, message: str, row_id: int):
        super().__init__(message)
        self.row_id = row_id


@dataclass(frozen=True)
class Approval:
    """Who approved a row as it is written, and why: becomes one Review row."""

    by: User | str  # a user, or a name (an import's --approved-by, "simulate")
    reason: str | None = None
    verdict: str = "approve"  # approve | edit | adjudicate: the review action that approved it
    payload: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- users and reviews


def get_or_create_user(session: Session, name: str | None, role: str = "annotator", simulated: bool = False) -> User | None:
    """The user called `name` (created without a password, so it cannot log in), or None."""
    if not name:
        return None
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        user = User(name=name, role=role, password_hash=None, simulated=simulated)
        session.add(user)
        session.flush()
    return user


def _user(session: Session, who: User | str | None) -> User | None:
    return who if isinstance(who, User) or who is None else get_or_create_user(session, who)


def add_review(session: Session, kind: str, item_id: int, by: User | str, verdict: str, reason: str | None = None,
               payload: dict | None = None) -> Review:
    """One append-only review row: who (a user, or a bare name), what verdict on which item, and why."""
    user = by if isinstance(by, User) else None
    rev = Review(item_type=kind, item_id=item_id, reviewer_id=user.id if user else None,
                 reviewer_name=user.name if user else by, verdict=verdict, reason=(reason or "").strip() or None,
                 payload=payload or {})
    session.add(rev)
    session.flush()
    return rev


def approve(session: Session, kind: str, row, approval: Approval) -> Review:
    """Mark a demonstration or ranking approved and record who did it (an import by a team member counts as a review)."""
    row.status = "approved"
    return add_review(session, kind, row.id, approval.by, approval.verdict, approval.reason, approval.payload)


def _stored(session: Session, kind: str, row, approved: Approval | None) -> Written:
    session.add(row)
    session.flush()
    if approved is not None:
        approve(session, kind, row, approved)
    return Written(row, True)


# --------------------------------------------------------------------------- prompts and responses


def prompt_hash(messages: list[dict]) -> str:
    return content_hash({"messages": messages})


def add_prompt(session: Session, external_id: str, messages: list[dict], tags: list[str] | tuple = (),
               where: str = "prompt", line: int | None = None) -> Written:
    """A prompt (split "heldout" when tagged so); the same messages again are a duplicate (returned).

    An `external_id` already used by other messages is an InputError on field "id".
    """
    rec = check_prompt(where, line, {"id": external_id, "messages": messages, "tags": list(tags)})
    h = prompt_hash(rec["messages"])
    existing = session.scalar(select(Prompt).where(Prompt.content_hash == h))
    if existing is not None:
        return Written(existing, False)
    if session.scalar(select(Prompt.id).where(Prompt.external_id == rec["id"])):
        raise InputError(where, line, "id", f"prompt id {rec['id']!r} is already used by a prompt with other content")
    split = "heldout" if HELDOUT_TAG in rec["tags"] else "train"
    p = Prompt(external_id=rec["id"], messages=rec["messages"], tags=rec["tags"], split=split, content_hash=h)
    session.add(p)
    session.flush()
    return Written(p, True)


def add_response(session: Session, prompt: Prompt, text: str, origin: str, model_version: str = "",
                 generation: dict | None = None) -> Response:
    """The stored response with this text (reused when identical), else a new one.

    Text a person wrote (origin "human") is checked like any text; a model's output is stored as it
    came (an empty answer is data too: the reward model should learn it is bad).
    """
    if origin == "human":
        check_text(f"response to prompt {prompt.external_id!r}", "text", text)
    h = content_hash({"text": text})
    r = session.scalar(select(Response).where(Response.prompt_id == prompt.id, Response.origin == origin,
                                              Response.model_version == model_version, Response.content_hash == h))
    if r is None:
        r = Response(prompt_id=prompt.id, text=text, origin=origin, model_version=model_version,
                     generation=generation or {}, content_hash=h)
        session.add(r)
        session.flush()
    return r


# --------------------------------------------------------------------------- demonstrations


def demonstration_hash(prompt: Prompt, messages: list[dict], key: str | None = None) -> str:
    """The prompt and the whole conversation (what a demonstrations file gives), plus where it was made."""
    body: dict = {"prompt": prompt.content_hash, "messages": messages}
    return content_hash({**body, "key": key} if key else body)


def add_demonstration(session: Session, prompt: Prompt, answer: str, *, annotator: User | str | None = None,
                      key: str | None = None, origin: str = "human", parent: Demonstration | None = None,
                      seconds_spent: float | None = None, approved: Approval | None = None,
                      duplicate: OnDuplicate = "return", where: str | None = None) -> Written:
    """The assistant's `answer` to `prompt` (its messages + the answer), pending unless `approved`.

    `parent`: the demonstration this one corrects (version = parent's + 1). A named `annotator`
    who is not a user yet is created, without a password, only when the row is new.
    """
    where = where or f"demonstration of prompt {prompt.external_id!r}"
    check_text(where, "answer", answer)
    messages = [*prompt.messages, {"role": "assistant", "content": answer}]
    h = demonstration_hash(prompt, messages, key)
    dup = session.scalar(select(Demonstration).where(Demonstration.content_hash == h))
    if dup is not None:
        if duplicate == "raise":
            raise DuplicateError(f"demonstration {dup.id} already has exactly this answer to prompt "
                                 f"{prompt.external_id!r}; review that one", dup.id)
        return Written(dup, False)
    user = _user(session, annotator)
    row = Demonstration(prompt_id=prompt.id, messages=messages, annotator_id=user.id if user else None, origin=origin,
                        status="pending", version=parent.version + 1 if parent else 1,
                        parent_id=parent.id if parent else None, content_hash=h, seconds_spent=seconds_spent)
    return _stored(session, "demonstration", row, approved)


# --------------------------------------------------------------------------- rankings


def ranking_hash(prompt: Prompt, response_ids: list[int], order: list[list[int]], all_bad: bool, annotator: str | None,
                 key: str | None = None) -> str:
    """The prompt, the responses, the order, all-bad and the annotator (what a rankings file gives), plus where it was made."""
    body: dict = {"prompt": prompt.content_hash, "responses": response_ids, "order": order, "all_bad": all_bad,
                  "annotator": annotator}
    return content_hash({**body, "key": key} if key else body)


def add_ranking(session: Session, prompt: Prompt, response_ids: list[int], order: list, *,
                annotator: User | str | None = None, key: str | None = None, origin: str = "human",
                all_bad: bool = False, reason: str | None = None, shown_order: list[int] | None = None,
                seconds_spent: float | None = None, approved: Approval | None = None,
                duplicate: OnDuplicate = "return", where: str | None = None) -> Written:
    """An order (best first, inner lists are ties) over `response_ids`, pending unless `approved`.

    `shown_order`: the response ids as the annotator saw them (None when unknown, e.g. from a file:
    position-bias statistics must not read a file's order as the screen's).
    """
    where = where or f"ranking of prompt {prompt.external_id!r}"
    c = Checker(where, None, {})
    ids = list(response_ids)
    if len(ids) < 2 or len(set(ids)) != len(ids):
        c.fail("response_ids", f"a ranking needs at least 2 different responses, got {ids}")
    order = check_order(c, order, len(ids))
    name = annotator.name if isinstance(annotator, User) else annotator
    h = ranking_hash(prompt, ids, order, bool(all_bad), name, key)
    dup = session.scalar(select(Ranking).where(Ranking.content_hash == h))
    if dup is not None:
        if duplicate == "raise":
            raise DuplicateError(f"ranking {dup.id} already stores exactly this order of these answers to prompt "
                                 f"{prompt.external_id!r}" + (f" by {name}" if name else ""), dup.id)
        return Written(dup, False)
    user = _user(session, annotator)
    row = Ranking(prompt_id=prompt.id, response_ids=ids, order=order, shown_order=shown_order, all_bad=bool(all_bad),
                  reason=reason, annotator_id=user.id if user else None, origin=origin, status="pending",
                  content_hash=h, seconds_spent=seconds_spent)
    return _stored(session, "ranking", row, approved)
