"""The expert's review queue and actions: approve, reject with a reason, edit, adjudicate.

Every action is one call inside the caller's transaction and writes at least one Review row
(reviewer, time, verdict, reason); nothing is deleted or overwritten:

- approve / reject: the item's status becomes approved / rejected (a rejection needs a reason).
  Reviewing again is allowed (the newest verdict sets the status; all stay in the history).
- edit (demonstrations): a NEW Demonstration (version + 1, parent_id = the original, status
  approved, written by the expert) is added and the original is marked "superseded". The edit
  is also a preference: a Ranking over two Responses (edited text, original text), order
  [[0], [1]], origin human, annotator = the expert, status approved, so the reward model learns
  edited > original.
- adjudicate (rankings): the expert's ranking of a contested prompt becomes its consensus (`adjudicate`).

Only users whose role is expert or admin may act; the check is here, on the server, so every
caller (app handlers, CLI, scripts) gets it. Registry snapshots take approved items by default
(`rlhf.data.registry.SnapshotOptions`), so nothing reaches training unreviewed unless asked for.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from rlhf.errors import NotFoundError, RlhfError
from rlhf.data.formats import _Checker, content_hash
from rlhf.data.ingest import add_response, ranking_hash
from rlhf.data.store.models import Demonstration, Prompt, Ranking, Response, Review, User

REVIEWER_ROLES = ("expert", "admin")
KINDS = {"demonstration": Demonstration, "ranking": Ranking}
REVIEWABLE = ("pending", "approved", "rejected")  # a superseded item has a newer version or a consensus: review that


class NotAllowed(RlhfError, PermissionError):
    """The caller's role may not do this (raised on the server, whatever the page showed)."""


def require_reviewer(session: Session, user: User | str | None) -> User:
    """The User behind `user` (a name or a row) if they are an expert or admin; NotAllowed otherwise."""
    if isinstance(user, User):
        row = session.get(User, user.id)
    else:
        row = session.scalar(select(User).where(User.name == user)) if user else None
    if row is None:
        raise NotAllowed(f"review actions need a logged-in expert or admin (unknown user {user!r})")
    if row.role not in REVIEWER_ROLES:
        raise NotAllowed(f"user {row.name!r} has role {row.role!r}: only an expert or admin can review")
    return row


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


def _record(session: Session, reviewer: User, kind: str, item_id: int, verdict: str, reason: str | None,
            payload: dict | None = None) -> Review:
    rev = Review(item_type=kind, item_id=item_id, reviewer_id=reviewer.id, reviewer_name=reviewer.name, verdict=verdict,
                 reason=(reason or "").strip() or None, payload=payload or {})
    session.add(rev)
    session.flush()
    return rev


def approve(session: Session, reviewer: User | str, kind: str, item_id: int, reason: str | None = None) -> Review:
    """Mark a demonstration or ranking approved: it enters default snapshots."""
    user = require_reviewer(session, reviewer)
    row = _item(session, kind, item_id)
    before, row.status = row.status, "approved"
    return _record(session, user, kind, item_id, "approve", reason, {"status_before": before})


def reject(session: Session, reviewer: User | str, kind: str, item_id: int, reason: str) -> Review:
    """Mark a demonstration or ranking rejected; the reason is required (the annotator reads it)."""
    user = require_reviewer(session, reviewer)
    if not (reason or "").strip():
        raise RlhfError(f"rejecting {kind} {item_id} needs a reason: say what is wrong so the annotator can learn from it")
    row = _item(session, kind, item_id)
    before, row.status = row.status, "rejected"
    return _record(session, user, kind, item_id, "reject", reason, {"status_before": before})


@dataclass
class EditResult:
    original: Demonstration
    new: Demonstration
    preference: Ranking  # (edited > original)
    review: Review


def edit_demonstration(session: Session, reviewer: User | str, demonstration_id: int, answer: str,
                       reason: str | None = None) -> EditResult:
    """Store the expert's corrected answer as a new version and the (edited > original) preference."""
    user = require_reviewer(session, reviewer)
    orig = _item(session, "demonstration", demonstration_id)
    answer = _Checker(f"edit of demonstration {demonstration_id}", None, {}).text("answer", answer).strip()
    old_answer = orig.messages[-1]["content"]
    if answer == old_answer.strip():
        raise RlhfError(f"demonstration {demonstration_id}: the edited answer is the same as the original; "
                        "approve it instead")
    prompt = session.get(Prompt, orig.prompt_id)
    messages = [*orig.messages[:-1], {"role": "assistant", "content": answer}]
    h = content_hash({"prompt": prompt.content_hash, "messages": messages})  # the import's hash: duplicates collide
    if (dup := session.scalar(select(Demonstration.id).where(Demonstration.content_hash == h))) is not None:
        raise RlhfError(f"demonstration {dup} already has exactly this answer to the prompt; review that one")
    new = Demonstration(prompt_id=orig.prompt_id, messages=messages, annotator_id=user.id, origin="human",
                        status="approved", version=orig.version + 1, parent_id=orig.id, content_hash=h)
    before, orig.status = orig.status, "superseded"
    session.add(new)
    session.flush()

    # the edit as a preference pair: edited (index 0) over original (index 1)
    edited_r = add_response(session, prompt, answer, origin="human", generation={"demonstration_id": new.id})
    original_r = add_response(session, prompt, old_answer, origin="human", generation={"demonstration_id": orig.id})
    ids, order = [edited_r.id, original_r.id], [[0], [1]]
    why = (reason or "").strip() or None
    pref = Ranking(prompt_id=prompt.id, response_ids=ids, order=order, shown_order=None, all_bad=False,
                   reason=why or f"expert edit of demonstration {orig.id}", annotator_id=user.id, origin="human",
                   status="approved", content_hash=ranking_hash(prompt, ids, order, False, f"edit:{orig.id}->{new.id}"))
    session.add(pref)
    session.flush()
    rev = _record(session, user, "demonstration", orig.id, "edit", why,
                  {"status_before": before, "new_demonstration_id": new.id, "preference_ranking_id": pref.id})
    _record(session, user, "demonstration", new.id, "approve", f"the expert's own edit of demonstration {orig.id}",
            {"parent_id": orig.id})
    _record(session, user, "ranking", pref.id, "edit", why,
            {"from_demonstration_id": orig.id, "new_demonstration_id": new.id})
    return EditResult(orig, new, pref, rev)


def adjudicate(session: Session, reviewer: User | str, prompt_id: int, order: list[list[int]], reason: str,
               response_ids: list[int] | None = None, shown_order: list[int] | None = None,
               include_simulated: bool = False) -> Ranking:
    """Record the expert's ranking of a contested prompt as its consensus.

    `order` indexes `response_ids` (default: every response the annotators ranked for the prompt,
    sorted by id). Adds a Ranking (origin human, annotator = the expert, status approved), a Review
    (verdict "adjudicate") naming who and why, and marks the annotators' rankings of the prompt
    superseded (each with its own Review row). Nothing is deleted.
    """
    from rlhf.data.formats import check_order, _Checker
    from rlhf.data.store.models import utcnow
    from rlhf.review import agreement

    expert = require_reviewer(session, reviewer)
    if not (reason or "").strip():
        raise RlhfError("adjudication needs a reason: say why this order is the consensus")
    prompt = session.get(Prompt, prompt_id)
    if prompt is None:
        raise NotFoundError(f"no prompt with id {prompt_id}")
    records, _, _, _ = agreement.load(session, include_simulated)
    mine = {}
    for rec in sorted((r for r in records if r.prompt_id == prompt_id), key=lambda r: r.ranking_id):
        mine[rec.annotator] = rec
    if response_ids is None:
        response_ids = sorted({rid for rec in mine.values() for rid in rec.response_ids})
    if len(response_ids) < 2:
        raise RlhfError(f"prompt {prompt.external_id!r} has fewer than two ranked responses: nothing to adjudicate")
    order = check_order(_Checker("adjudication", None, {}), [list(g) for g in order], len(response_ids))
    h = content_hash({"prompt": prompt.content_hash, "responses": list(response_ids), "order": order,
                      "adjudicated_by": expert.name, "replaces": sorted(r.ranking_id for r in mine.values()),
                      "time": utcnow().isoformat()})
    ranking = Ranking(prompt_id=prompt_id, response_ids=list(response_ids), order=order, shown_order=shown_order,
                      all_bad=False, reason=reason.strip(), annotator_id=expert.id, origin="human", status="approved",
                      content_hash=h)
    session.add(ranking)
    session.flush()
    replaced = []
    for rec in mine.values():
        old = session.get(Ranking, rec.ranking_id)
        if old.status in ("pending", "approved"):
            old.status = "superseded"
            replaced.append(old.id)
            session.add(Review(item_type="ranking", item_id=old.id, reviewer_id=expert.id, reviewer_name=expert.name,
                               verdict="supersede", reason=f"adjudicated: ranking #{ranking.id} is the consensus",
                               payload={"adjudication_ranking_id": ranking.id}))
    session.add(Review(item_type="ranking", item_id=ranking.id, reviewer_id=expert.id, reviewer_name=expert.name,
                       verdict="adjudicate", reason=reason.strip(),
                       payload={"prompt_id": prompt_id, "external_id": prompt.external_id, "order": order,
                                "response_ids": list(response_ids), "annotator_rankings": [r.ranking_id for r in mine.values()],
                                "superseded": replaced}))
    session.flush()
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
