"""The expert's review queue and actions: approve, reject with a reason, edit, adjudicate.

Every action is one call inside the caller's transaction and writes at least one Review row
(reviewer, time, verdict, reason); nothing is deleted or overwritten:

- approve / reject: the item's status becomes approved / rejected (a rejection needs a reason).
  Reviewing again is allowed (the newest verdict sets the status; all stay in the history).
  The status changes by a conditional update (`UPDATE ... WHERE status IN REVIEWABLE`): an approval
  racing an edit or an adjudication that superseded the row finds nothing to update and says so,
  so a superseded row never comes back to life.
- nobody reviews their own work: approving, rejecting, editing or adjudicating a row the reviewer
  wrote (an expert's own demonstration or ranking) is an AccessDenied; another reviewer must do it.
- edit (demonstrations): a NEW Demonstration (version + 1, parent_id = the original, status
  approved, written by the expert) is added and the original is marked "superseded". The edit
  is also a preference: a Ranking over two Responses (edited text, original text), order
  [[0], [1]], origin human, annotator = the expert, status approved, so the reward model learns
  edited > original.
- adjudicate (rankings): the expert's ranking of a contested prompt becomes its consensus (`adjudicate`);
  submitting the same consensus again stores nothing new.

Only users whose role is expert or admin may act (`rlhf.data.accounts.require` with `REVIEWERS`);
the check is here, on the server, so every caller (app handlers, CLI, scripts) gets it. It takes
any user with the role (`login=False`): the app has already checked its caller's login. Rows are
written by `rlhf.data.records`, each approved row naming its reviewer. Registry snapshots take approved items by default
(`rlhf.data.registry.SnapshotOptions`), so nothing reaches training unreviewed unless asked for.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from rlhf.data.accounts import REVIEWERS, AccessDenied, require
from rlhf.data.formats import Checker, check_order
from rlhf.data.records import Approval, add_demonstration, add_ranking, add_response, add_review
from rlhf.data.store.db import lock_row
from rlhf.data.store.models import Demonstration, Prompt, Ranking, Response, Review, User
from rlhf.errors import NotFoundError, RlhfError

KINDS = {"demonstration": Demonstration, "ranking": Ranking}
REVIEWABLE = ("pending", "approved", "rejected")  # a superseded item has a newer version or a consensus: review that


# --------------------------------------------------------------------------- the queue


@dataclass
class QueueItem:
    kind: str  # demonstration | ranking
    id: int
    prompt_id: int
    prompt_external_id: str
    tags: list[str]
    annotator: str
    created_at: dt.datetime
    messages: list[dict]  # the prompt's messages
    answer: str | None = None  # demonstration: the assistant answer
    version: int = 1  # demonstration version
    responses: list[str] = field(default_factory=list)  # ranking: response texts in stored order
    order: list[list[int]] = field(default_factory=list)  # ranking: best first, inner lists are ties
    all_bad: bool = False
    reason: str | None = None  # the annotator's note on a ranking

    @property
    def key(self) -> str:
        """`demonstration:12` / `ranking:3`: what a picker in the UI passes back."""
        return f"{self.kind}:{self.id}"


def queue(session: Session, kind: str | None = None, tag: str | None = None, annotator: str | None = None,
          include_simulated: bool = False, limit: int | None = None) -> list[QueueItem]:
    """Pending demonstrations and rankings, oldest first, optionally of one kind, tag or annotator."""
    kinds = [kind] if kind else list(KINDS)
    for k in kinds:
        if k not in KINDS:
            raise RlhfError(f"unknown item kind {k!r}: expected demonstration or ranking")
    items: list[QueueItem] = []
    for k in kinds:
        model = KINDS[k]
        q = (select(model, Prompt, User.name).join(Prompt, model.prompt_id == Prompt.id)
             .outerjoin(User, model.annotator_id == User.id).where(model.status == "pending"))
        if not include_simulated:
            q = q.where(model.origin != "simulated")
        if annotator:
            q = q.where(User.name == annotator)
        for row, prompt, name in session.execute(q).all():
            if tag and tag not in (prompt.tags or []):  # JSON containment differs per database: filter here
                continue
            item = QueueItem(kind=k, id=row.id, prompt_id=prompt.id, prompt_external_id=prompt.external_id,
                             tags=list(prompt.tags or []), annotator=name or "", created_at=row.created_at,
                             messages=list(prompt.messages))
            if k == "demonstration":
                item.answer, item.version = row.messages[-1]["content"], row.version
            else:
                texts = dict(session.execute(select(Response.id, Response.text)
                                             .where(Response.id.in_(row.response_ids))).all())
                item.responses = [texts[i] for i in row.response_ids]
                item.order, item.all_bad, item.reason = [list(g) for g in row.order], row.all_bad, row.reason
            items.append(item)
    items.sort(key=lambda it: (it.created_at, it.kind, it.id))
    return items[:limit] if limit else items


def queue_filters(session: Session) -> tuple[list[str], list[str]]:
    """(tags, annotator names) that occur on pending items: the choices of the queue's filters."""
    tags, names = set(), set()
    for model in KINDS.values():
        q = (select(Prompt.tags, User.name).select_from(model).join(Prompt, model.prompt_id == Prompt.id)
             .outerjoin(User, model.annotator_id == User.id).where(model.status == "pending"))
        for t, name in session.execute(q).all():
            tags.update(t or [])
            if name:
                names.add(name)
    return sorted(tags), sorted(names)


def parse_key(key: str) -> tuple[str, int]:
    """`demonstration:12` -> ("demonstration", 12)."""
    kind, _, num = (key or "").partition(":")
    if kind not in KINDS or not num.isdigit():
        raise RlhfError(f"{key!r} is not an item: expected demonstration:ID or ranking:ID")
    return kind, int(num)


# --------------------------------------------------------------------------- actions


def _item(session: Session, kind: str, item_id: int):
    if kind not in KINDS:
        raise RlhfError(f"unknown item kind {kind!r}: expected demonstration or ranking")
    row = session.get(KINDS[kind], item_id)
    if row is None:
        raise NotFoundError(f"no {kind} with id {item_id}")
    if row.status not in REVIEWABLE:
        hint = ""
        if kind == "demonstration":
            newer = session.scalar(select(Demonstration.id).where(Demonstration.parent_id == row.id)
                                   .order_by(Demonstration.id.desc()))
            hint = f": review its newer version, demonstration {newer}" if newer else ""
        raise RlhfError(f"{kind} {item_id} is {row.status}{hint}")
    return row


def _not_own(user: User, row, kind: str, action: str) -> None:
    if row.annotator_id is not None and row.annotator_id == user.id:
        raise AccessDenied(f"{action}: {kind} {row.id} is {user.name}'s own work; another reviewer must {action} it")


def _change_status(session: Session, user: User, kind: str, item_id: int, action: str, status: str,
                   allowed: tuple[str, ...] = REVIEWABLE):
    """Check the row may be reviewed by `user`, then move it to `status` only if it is still in `allowed`
    (a conditional update: it holds the row until the transaction ends). Returns (row, status before)."""
    row = _item(session, kind, item_id)
    _not_own(user, row, kind, action)
    before = row.status
    model = KINDS[kind]
    done = session.execute(update(model).where(model.id == item_id, model.status.in_(allowed)).values(status=status)
                           .execution_options(synchronize_session=False))
    if done.rowcount != 1:  # a concurrent edit or adjudication got there first
        session.refresh(row)
        _item(session, kind, item_id)  # names what happened to it (superseded by ...)
        raise RlhfError(f"{kind} {item_id} changed while you reviewed it (now {row.status}): reload and review again")
    set_committed_value(row, "status", status)
    return row, before


def approve(session: Session, reviewer: User | str, kind: str, item_id: int, reason: str | None = None) -> Review:
    """Mark a demonstration or ranking approved: it enters default snapshots."""
    user = require(session, reviewer, REVIEWERS, "approve", login=False)
    _, before = _change_status(session, user, kind, item_id, "approve", "approved")
    return add_review(session, kind, item_id, user, "approve", reason, {"status_before": before})


def reject(session: Session, reviewer: User | str, kind: str, item_id: int, reason: str) -> Review:
    """Mark a demonstration or ranking rejected; the reason is required (the annotator reads it)."""
    user = require(session, reviewer, REVIEWERS, "reject", login=False)
    if not (reason or "").strip():
        raise RlhfError(f"rejecting {kind} {item_id} needs a reason: say what is wrong so the annotator can learn from it")
    _, before = _change_status(session, user, kind, item_id, "reject", "rejected")
    return add_review(session, kind, item_id, user, "reject", reason, {"status_before": before})


@dataclass
class EditResult:
    original: Demonstration
    new: Demonstration
    preference: Ranking  # (edited > original)
    review: Review


def edit_demonstration(session: Session, reviewer: User | str, demonstration_id: int, answer: str,
                       reason: str | None = None) -> EditResult:
    """Store the expert's corrected answer as a new version and the (edited > original) preference."""
    user = require(session, reviewer, REVIEWERS, "edit", login=False)
    orig = _item(session, "demonstration", demonstration_id)
    where = f"edit of demonstration {demonstration_id}"
    answer = (answer or "").strip()
    old_answer = orig.messages[-1]["content"]
    if answer and answer == old_answer.strip():
        raise RlhfError(f"demonstration {demonstration_id}: the edited answer is the same as the original; "
                        "approve it instead")
    prompt = session.get(Prompt, orig.prompt_id)
    why = (reason or "").strip() or None
    # the original is superseded first, conditionally: a concurrent approval, rejection or second edit waits for
    # this transaction and then finds the row superseded instead of bringing it back
    _, before = _change_status(session, user, "demonstration", orig.id, "edit", "superseded")
    # the history reads in the order things happened: the edit of the original, then its new version's approval,
    # then the preference pair; the edit's payload names the rows it made once they exist
    rev = add_review(session, "demonstration", orig.id, user, "edit", why, {"status_before": before})
    # no key: an edit hashes like an imported answer, so an answer already stored is refused by name
    new = add_demonstration(session, prompt, answer, annotator=user, parent=orig, duplicate="raise", where=where,
                            approved=Approval(user, f"the expert's own edit of demonstration {orig.id}",
                                              payload={"parent_id": orig.id})).row

    # the edit as a preference pair: edited (index 0) over original (index 1)
    edited_r = add_response(session, prompt, answer, origin="human", generation={"demonstration_id": new.id})
    original_r = add_response(session, prompt, old_answer, origin="human", generation={"demonstration_id": orig.id})
    pref = add_ranking(session, prompt, [edited_r.id, original_r.id], [[0], [1]], annotator=user,
                       key=f"edit:{orig.id}->{new.id}", reason=why or f"expert edit of demonstration {orig.id}",
                       approved=Approval(user, why, "edit", {"from_demonstration_id": orig.id,
                                                             "new_demonstration_id": new.id})).row
    rev.payload = {**rev.payload, "new_demonstration_id": new.id, "preference_ranking_id": pref.id}
    session.flush()
    return EditResult(orig, new, pref, rev)


def adjudicate(session: Session, reviewer: User | str, prompt_id: int, order: list[list[int]], reason: str,
               response_ids: list[int] | None = None, shown_order: list[int] | None = None,
               include_simulated: bool = False) -> Ranking:
    """Record the expert's ranking of a contested prompt as its consensus.

    `order` indexes `response_ids` (default: every response the annotators ranked for the prompt,
    sorted by id). Adds a Ranking (origin human, annotator = the expert, status approved), a Review
    (verdict "adjudicate") naming who and why, and marks the annotators' rankings of the prompt
    superseded (each with its own Review row). Nothing is deleted. The same consensus again (same
    expert, responses and order, no new annotator ranking to supersede) returns the stored ranking
    and writes nothing: a double click or a retried request is a no-op.
    """
    from rlhf.review import agreement

    expert = require(session, reviewer, REVIEWERS, "adjudicate", login=False)
    if not (reason or "").strip():
        raise RlhfError("adjudication needs a reason: say why this order is the consensus")
    prompt = session.get(Prompt, prompt_id)
    if prompt is None:
        raise NotFoundError(f"no prompt with id {prompt_id}")
    lock_row(session, Prompt, prompt_id)  # one adjudication of a prompt at a time: the second sees the first's consensus
    records, adjudications, _, _ = agreement.load(session, include_simulated)
    mine = {}
    for rec in sorted((r for r in records if r.prompt_id == prompt_id), key=lambda r: r.ranking_id):
        mine[rec.annotator] = rec
    if expert.name in mine:
        raise AccessDenied(f"adjudicate: {expert.name} ranked prompt {prompt.external_id!r} (ranking "
                           f"{mine[expert.name].ranking_id}); another reviewer must adjudicate it")
    if response_ids is None:
        response_ids = sorted({rid for rec in mine.values() for rid in rec.response_ids})
    response_ids = list(response_ids)
    if len(response_ids) < 2:
        raise RlhfError(f"prompt {prompt.external_id!r} has fewer than two ranked responses: nothing to adjudicate")
    order = check_order(Checker("adjudication", None, {}), [list(g) for g in order], len(response_ids))
    olds = [session.get(Ranking, rec.ranking_id) for rec in mine.values()]
    replaced = [old.id for old in olds if old.status in ("pending", "approved")]
    current = adjudications.get(prompt_id)  # the prompt's consensus so far (the latest adjudication)
    if (current is not None and not replaced and current.annotator == expert.name
            and list(current.response_ids) == response_ids and [list(g) for g in current.order] == order):
        return session.get(Ranking, current.ranking_id)  # the same consensus again (a double click): nothing new
    # the key names the annotator rankings judged and the consensus replaced: a twin submit hashes the same
    key = (f"adjudicate:{prompt.external_id}:{expert.name}:{sorted(r.ranking_id for r in mine.values())}"
           f":after:{current.ranking_id if current else None}")
    payload = {"prompt_id": prompt_id, "external_id": prompt.external_id, "order": order, "response_ids": response_ids,
               "annotator_rankings": [r.ranking_id for r in mine.values()], "superseded": replaced}
    ranking, created = add_ranking(session, prompt, response_ids, order, annotator=expert, key=key, reason=reason.strip(),
                                   shown_order=shown_order, approved=Approval(expert, reason, "adjudicate", payload),
                                   where="adjudication")
    if not created:
        return ranking
    for old in olds:
        if old.id in replaced:
            session.execute(update(Ranking).where(Ranking.id == old.id, Ranking.status.in_(("pending", "approved")))
                            .values(status="superseded").execution_options(synchronize_session=False))
            set_committed_value(old, "status", "superseded")
            add_review(session, "ranking", old.id, expert, "supersede", f"adjudicated: ranking #{ranking.id} is the consensus",
                       {"adjudication_ranking_id": ranking.id})
    return ranking


def history(session: Session, kind: str, item_id: int) -> list[Review]:
    """Every review action on an item, oldest first."""
    return list(session.scalars(select(Review).where(Review.item_type == kind, Review.item_id == item_id)
                                .order_by(Review.id)))


def versions(session: Session, demonstration_id: int) -> list[Demonstration]:
    """The chain of versions a demonstration belongs to, oldest first."""
    row = session.get(Demonstration, demonstration_id)
    if row is None:
        raise NotFoundError(f"no demonstration with id {demonstration_id}")
    while row.parent_id is not None:
        row = session.get(Demonstration, row.parent_id)
    chain = [row]
    while (child := session.scalar(select(Demonstration).where(Demonstration.parent_id == chain[-1].id)
                                   .order_by(Demonstration.id))) is not None:
        chain.append(child)
    return chain
