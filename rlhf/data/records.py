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
- races: a row is inserted with ON CONFLICT DO NOTHING (`rlhf.data.store.db.insert_new`), so two
  processes writing the same row at once (two imports of one file, an app and a CLI) store it once
  and the loser gets the twin, never an IntegrityError that would roll back its whole transaction.
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
from typing import Any, Callable, Literal, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from rlhf.data.formats import (MODEL_REF_CHARS, Checker, check_name, check_note, check_order, check_prompt, check_text,
                                content_hash)
from rlhf.data.store.db import insert_all, insert_rows
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
    return _users(session, [name], role, simulated).get(name) if name else None


def _users(session: Session, who: list, role: str = "annotator", simulated: bool = False) -> dict:
    """{name: User} for the names in `who` (User rows pass through), the missing ones created without a password."""
    out = {u.name: u for u in who if isinstance(u, User)}
    names = {n for n in who if isinstance(n, str) and n}
    if names:
        out |= {u.name: u for u in session.scalars(select(User).where(User.name.in_(names)))}
        missing = sorted(names - set(out))
        if missing:
            insert_rows(session, User, [dict(name=check_name("user", "name", n), role=role, password_hash=None,
                                              simulated=simulated) for n in missing], "id")
            out |= {u.name: u for u in session.scalars(select(User).where(User.name.in_(missing)))}  # ours or a twin
    return out


def add_review(session: Session, kind: str, item_id: int, by: User | str, verdict: str, reason: str | None = None,
               payload: dict | None = None) -> Review:
    """One append-only review row: who (a user, or a bare name), what verdict on which item, and why."""
    rev = _review(kind, item_id, by, verdict, reason, payload)
    session.add(rev)
    session.flush()
    return rev


def _review(kind: str, item_id: int, by: User | str, verdict: str, reason: str | None, payload: dict | None) -> Review:
    user = by if isinstance(by, User) else None
    where = f"{verdict} of {kind} {item_id}"
    return Review(item_type=kind, item_id=item_id, reviewer_id=user.id if user else None,
                  reviewer_name=user.name if user else check_name(where, "reviewer", by),
                  verdict=verdict, reason=check_note(where, "reason", reason), payload=payload or {})


@dataclass
class New:
    """A demonstration or ranking to write (`demonstration_row`, `ranking_row`): its content hash and columns, who made
    it (created as a user only when the row is new), who approved it, and what a duplicate means."""

    h: str
    values: dict
    annotator: User | str | None
    approved: Approval | None
    duplicate: OnDuplicate
    duplicate_message: Callable[[int], str]


def write_rows(session: Session, kind: str, rows: list[New]) -> list[Written]:
    """For each row: its stored twin (same content hash; or a DuplicateError naming it), else the new row, pending
    or approved with its Review, in a few statements for the whole list (an import writes a chunk at once).
    A twin a concurrent writer stores between the look and the insert is found the same way."""
    model = KINDS[kind]

    def twins(hashes: set[str]) -> dict:
        found = {r.content_hash: r for r in session.scalars(select(model).where(model.content_hash.in_(hashes)))} if hashes else {}
        for n in rows:
            if n.h in found and n.duplicate == "raise":
                raise DuplicateError(n.duplicate_message(found[n.h].id), found[n.h].id)
        return found

    found = twins({n.h for n in rows})
    fresh: dict[str, New] = {}
    for n in rows:
        if n.h not in found:
            fresh.setdefault(n.h, n)
    users = _users(session, [n.annotator for n in fresh.values()])
    made = {r.content_hash: r for r in insert_all(session, model, [
        {**n.values, "content_hash": h, "status": "approved" if n.approved else "pending",
         "annotator_id": users[_name(n.annotator)].id if n.annotator else None} for h, n in fresh.items()])}
    found |= twins(set(fresh) - set(made))
    # an approval is a review like any other: who and why, in the same transaction
    session.add_all(_review(kind, made[h].id, n.approved.by, n.approved.verdict, n.approved.reason, n.approved.payload)
                    for h, n in fresh.items() if h in made and n.approved is not None)
    session.flush()
    out, seen = [], set()
    for n in rows:
        out.append(Written(made[n.h], True) if n.h in made and n.h not in seen else Written(made.get(n.h) or found[n.h], False))
        seen.add(n.h)
    return out


def _name(who: User | str | None) -> str | None:
    return who.name if isinstance(who, User) else who


# --------------------------------------------------------------------------- prompts and responses


def prompt_hash(messages: list[dict]) -> str:
    return content_hash({"messages": messages})


def add_prompt(session: Session, external_id: str, messages: list[dict], tags: list[str] | tuple = (),
               where: str = "prompt", line: int | None = None) -> Written:
    """A prompt (split "heldout" when tagged so); the same messages again are a duplicate (returned).

    An `external_id` already used by other messages is an InputError on field "id".
    """
    rec = check_prompt(where, line, {"id": external_id, "messages": messages, "tags": list(tags)})
    (created,) = add_prompts(session, [(where, line, rec)])
    return Written(session.scalar(select(Prompt).where(Prompt.content_hash == prompt_hash(rec["messages"]))), created)


def add_prompts(session: Session, recs: list[tuple[str, int | None, dict]]) -> list[bool]:
    """Many prompts in a few statements (an import writes its file in chunks this way): for each
    (where, line, record), True when stored, False for an exact duplicate (same messages), by the rules
    of `add_prompt`. An id already used by other messages is an InputError naming where and line."""
    checked = [(where, line, check_prompt(where, line, rec)) for where, line, rec in recs]
    hashes = [prompt_hash(rec["messages"]) for _, _, rec in checked]
    stored = set(session.scalars(select(Prompt.content_hash).where(Prompt.content_hash.in_(set(hashes)))))
    id_owner = dict(session.execute(select(Prompt.external_id, Prompt.content_hash)
                                    .where(Prompt.external_id.in_({rec["id"] for _, _, rec in checked}))).all())
    new: dict[str, dict] = {}  # content hash -> row, the first line with that content
    for (where, line, rec), h in zip(checked, hashes):
        if h in stored or h in new:
            continue
        if id_owner.get(rec["id"], h) != h:
            raise InputError(where, line, "id", f"prompt id {rec['id']!r} is already used by a prompt with other content")
        id_owner[rec["id"]] = h
        new[h] = dict(external_id=rec["id"], messages=rec["messages"], tags=rec["tags"], content_hash=h,
                      split="heldout" if HELDOUT_TAG in rec["tags"] else "train")
    inserted = set(insert_rows(session, Prompt, list(new.values()), "content_hash"))
    lost = set(new) - inserted  # a concurrent writer stored these hashes, or these ids with other content, meanwhile
    if lost:
        twins = set(session.scalars(select(Prompt.content_hash).where(Prompt.content_hash.in_(lost))))
        for (where, line, rec), h in zip(checked, hashes):
            if h in lost and h not in twins:
                raise InputError(where, line, "id", f"prompt id {rec['id']!r} is already used by a prompt with other content")
    first = {h: i for i, h in reversed(list(enumerate(hashes)))}  # the line that stored a content, not its repeats
    return [h in inserted and first[h] == i for i, h in enumerate(hashes)]


def add_response(session: Session, prompt: Prompt, text: str, origin: str, model_version: str = "",
                 generation: dict | None = None) -> Response:
    """The stored response with this text (reused when identical), else a new one.

    Text a person wrote (origin "human") is checked like any text; a model's output is stored as it
    came (an empty answer is data too: the reward model should learn it is bad).
    """
    return add_responses(session, [(prompt, text)], origin, model_version, generation)[0]


def add_responses(session: Session, answers: list[tuple[Prompt, str]], origin: str, model_version: str = "",
                  generation: dict | None = None) -> list[Response]:
    """`add_response` for many (prompt, text) pairs of one origin and model version, in a few statements."""
    keys = []
    for prompt, text in answers:
        where = f"response to prompt {prompt.external_id!r}"
        if origin == "human":
            check_text(where, "text", text)
        else:
            text = text.replace("\x00", "\ufffd")  # a model's NUL byte (PostgreSQL cannot store it) is shown as U+FFFD
        if model_version:
            check_name(where, "model_version", model_version, MODEL_REF_CHARS)
        keys.append((prompt.id, content_hash({"text": text}), text))

    def stored() -> dict:
        q = select(Response).where(Response.origin == origin, Response.model_version == model_version,
                                   Response.prompt_id.in_({k[0] for k in keys}), Response.content_hash.in_({k[1] for k in keys}))
        return {(r.prompt_id, r.content_hash): r for r in session.scalars(q)}

    have = stored()
    new = {(pid, h): dict(prompt_id=pid, text=text, origin=origin, model_version=model_version,
                          generation=generation or {}, content_hash=h) for pid, h, text in keys if (pid, h) not in have}
    if new:
        have |= {(r.prompt_id, r.content_hash): r for r in insert_all(session, Response, list(new.values()))}
        if any(k not in have for k in new):
            have |= stored()  # twins a concurrent writer stored meanwhile
    return [have[(pid, h)] for pid, h, _ in keys]


# --------------------------------------------------------------------------- demonstrations


def demonstration_hash(prompt: Prompt, messages: list[dict], key: str | None = None) -> str:
    """The prompt and the whole conversation (what a demonstrations file gives), plus where it was made."""
    body: dict = {"prompt": prompt.content_hash, "messages": messages}
    return content_hash({**body, "key": key} if key else body)


def add_demonstration(session: Session, prompt: Prompt, answer: str, **how) -> Written:
    """The assistant's `answer` to `prompt` (its messages + the answer), pending unless `approved` (see
    `demonstration_row` for the options); `add_demonstrations` writes many at once by the same rules."""
    return write_rows(session, "demonstration", [demonstration_row(prompt, answer, **how)])[0]


def add_demonstrations(session: Session, rows: list[New]) -> list[Written]:
    return write_rows(session, "demonstration", rows)


def demonstration_row(prompt: Prompt, answer: str, *, annotator: User | str | None = None, key: str | None = None,
                      origin: str = "human", parent: Demonstration | None = None, seconds_spent: float | None = None,
                      approved: Approval | None = None, duplicate: OnDuplicate = "return", where: str | None = None) -> New:
    """A checked demonstration, ready for `write_rows`.

    `parent`: the demonstration this one corrects (version = parent's + 1). A named `annotator`
    who is not a user yet is created, without a password, only when the row is new.
    """
    where = where or f"demonstration of prompt {prompt.external_id!r}"
    check_text(where, "answer", answer)
    messages = [*prompt.messages, {"role": "assistant", "content": answer}]
    values = dict(prompt_id=prompt.id, messages=messages, origin=origin, version=parent.version + 1 if parent else 1,
                  parent_id=parent.id if parent else None, seconds_spent=seconds_spent)
    return New(demonstration_hash(prompt, messages, key), values, annotator, approved, duplicate,
               lambda dup: f"demonstration {dup} already has exactly this answer to prompt {prompt.external_id!r}; "
                           "review that one")


# --------------------------------------------------------------------------- rankings


def ranking_hash(prompt: Prompt, response_ids: list[int], order: list[list[int]], all_bad: bool, annotator: str | None,
                 key: str | None = None) -> str:
    """The prompt, the responses, the order, all-bad and the annotator (what a rankings file gives), plus where it was made."""
    body: dict = {"prompt": prompt.content_hash, "responses": response_ids, "order": order, "all_bad": all_bad,
                  "annotator": annotator}
    return content_hash({**body, "key": key} if key else body)


def add_ranking(session: Session, prompt: Prompt, response_ids: list[int], order: list, **how) -> Written:
    """An order (best first, inner lists are ties) over `response_ids`, pending unless `approved` (see `ranking_row`);
    `add_rankings` writes many at once by the same rules."""
    return write_rows(session, "ranking", [ranking_row(prompt, response_ids, order, **how)])[0]


def add_rankings(session: Session, rows: list[New]) -> list[Written]:
    return write_rows(session, "ranking", rows)


def ranking_row(prompt: Prompt, response_ids: list[int], order: list, *, annotator: User | str | None = None,
                key: str | None = None, origin: str = "human", all_bad: bool = False, reason: str | None = None,
                shown_order: list[int] | None = None, seconds_spent: float | None = None, approved: Approval | None = None,
                duplicate: OnDuplicate = "return", where: str | None = None) -> New:
    """A checked ranking, ready for `write_rows`.

    `shown_order`: the response ids as the annotator saw them (None when unknown, e.g. from a file:
    position-bias statistics must not read a file's order as the screen's).
    """
    where = where or f"ranking of prompt {prompt.external_id!r}"
    c = Checker(where, None, {})
    ids = list(response_ids)
    if len(ids) < 2 or len(set(ids)) != len(ids):
        c.fail("response_ids", f"a ranking needs at least 2 different responses, got {ids}")
    order = check_order(c, order, len(ids))
    name = _name(annotator)
    values = dict(prompt_id=prompt.id, response_ids=ids, order=order, shown_order=shown_order, all_bad=bool(all_bad),
                  reason=c.note("reason", reason), origin=origin, seconds_spent=seconds_spent)
    return New(ranking_hash(prompt, ids, order, bool(all_bad), name, key), values, annotator, approved, duplicate,
               lambda dup: f"ranking {dup} already stores exactly this order of these answers to prompt "
                           f"{prompt.external_id!r}" + (f" by {name}" if name else ""))


KINDS = {"demonstration": Demonstration, "ranking": Ranking}
