"""Gold items and annotator quality: experts' reference answers, and how each annotator's rankings compare.

- `mark_gold`: an expert (or admin) marks a label item gold with a reference, the one writer of `gold_items`
  rows: a rank item with a reference order (best-first groups of indices into the item's `response_ids`),
  a write item with an approved demonstration of its prompt. Marking again with the same reference is a
  no-op; another reference replaces it; each change leaves a Review row (`label_item`, verdict `gold`).
- `item_rankings`: every annotator's current ranking of each rank item (the result of their done
  assignment: a correction replaces it), as mid-ranks per response id.
- `consensus`: the mean rank of each answer over the *other* annotators of an item, once at least
  `MIN_OTHERS` of them ranked it (leave-one-out, so an annotator is never compared with themselves).
- `annotator_quality`: per annotator, gold accuracy -- the share of their gold rankings that agree with
  the reference, where *agree* is Kendall tau-b > 0 between their ranks and the reference's (an all-tied
  ranking has no tau and counts as a miss) -- and agreement with consensus, the mean Kendall tau-b
  against the leave-one-out consensus over their items that have one. The admin page shows these; the
  `preferences` snapshot records them in its lineage so the RM stage can weight annotators.

Imports only rlhf.data, rlhf.stats and rlhf.errors.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from rlhf import stats
from rlhf.data import formats
from rlhf.data.accounts import REVIEWERS, require
from rlhf.data.records import add_review
from rlhf.data.store.app_models import Assignment, LabelItem
from rlhf.data.store.db import insert_new, lock_row
from rlhf.data.store.loop_models import GoldItem
from rlhf.data.store.models import Demonstration, Ranking, User
from rlhf.errors import NotFoundError, RlhfError

MIN_OTHERS = 2  # other annotators who must have ranked an item before it has a consensus
GOLD_RULE = "Kendall tau-b > 0 against the reference order"


def find_item(session: Session, item: int | str) -> LabelItem:
    """A label item by id (`12`, `item:12`) or key (`rank:3:sft@v1`, `write:3`)."""
    text = str(item).strip()
    ident = text.removeprefix("item:")
    row = session.get(LabelItem, int(ident)) if ident.isdigit() else session.scalar(select(LabelItem).where(LabelItem.key == text))
    if row is None:
        raise NotFoundError(f"no label item {text!r}: give its id or its key (rank:PROMPT_ID:MODEL@vN, write:PROMPT_ID)")
    return row


def rank_item_holding(session: Session, prompt_id: int, response_ids) -> LabelItem:
    """The rank item of a prompt whose candidates are exactly `response_ids` (the adjudication page's answers)."""
    want = sorted(response_ids)
    found = [it for it in session.scalars(select(LabelItem).where(LabelItem.kind == "rank", LabelItem.prompt_id == prompt_id))
             if sorted(it.response_ids) == want]
    if not found:
        raise RlhfError(f"prompt {prompt_id}: no rank item in the queue holds exactly these answers; "
                        "mark one with `rlhf review gold ITEM`")
    return found[0]


def mark_gold(session: Session, reviewer: User | str, item: int | str, order: list | None = None,
              demonstration_id: int | None = None, login: bool = True) -> tuple[GoldItem, str]:
    """Mark a label item gold with its reference: (row, "marked" | "unchanged" | "changed")."""
    expert = require(session, reviewer, REVIEWERS, "mark gold", login=login)
    it = find_item(session, item)
    where = f"gold item {it.key}"
    if it.kind == "rank":
        if order is None or demonstration_id is not None:
            raise RlhfError(f"{where}: a rank item needs a reference order of its {len(it.response_ids)} answers")
        order = formats.check_order(formats.Checker(where, None, {}), order, len(it.response_ids), "order")
        if len(order) < 2:
            raise RlhfError(f"{where}: the reference puts every answer in one tie; order at least two of them")
        values = {"order": order, "demonstration_id": None}
    else:
        d = session.get(Demonstration, int(demonstration_id)) if demonstration_id is not None else None
        if order is not None or d is None:
            raise RlhfError(f"{where}: a write item needs an approved demonstration of its prompt (demonstration id)")
        if d.prompt_id != it.prompt_id or d.status != "approved":
            raise RlhfError(f"{where}: demonstration {d.id} is {d.status}, of prompt {d.prompt_id}; "
                            f"it must be approved and answer prompt {it.prompt_id}")
        values = {"order": None, "demonstration_id": d.id}
    lock_row(session, LabelItem, it.id)  # one marking of an item at a time: the second sees the first's row
    row = insert_new(session, GoldItem, {"item_id": it.id, "created_by": expert.name, **values})
    status = "marked"
    if row is None:
        row = session.get(GoldItem, it.id)
        if (row.order, row.demonstration_id) == (values["order"], values["demonstration_id"]):
            return row, "unchanged"
        row.order, row.demonstration_id, status = values["order"], values["demonstration_id"], "changed"
        session.flush()
    add_review(session, "label_item", it.id, expert, "gold", f"{status} gold ({it.kind} item {it.key})", values)
    return row, status


@dataclass(frozen=True)
class ItemRanking:
    item_id: int
    annotator: str
    ranking_id: int
    ranks: dict  # response id -> mid-rank (1 = best; a tie shares the mean of its places)


def item_rankings(session: Session, include_simulated: bool = True, item_ids=None) -> dict[int, list[ItemRanking]]:
    """Item id -> each annotator's current ranking of that rank item (of `item_ids` only, when given), oldest first."""
    q = (select(Assignment.item_id, User.name, Ranking)
         .join(Ranking, Ranking.id == Assignment.result_id).join(User, User.id == Assignment.user_id)
         .where(Assignment.kind == "rank", Assignment.result_type == "ranking", Assignment.result_id.is_not(None))
         .order_by(Assignment.id))
    if not include_simulated:
        q = q.where(User.simulated.is_(False))
    if item_ids is not None:
        q = q.where(Assignment.item_id.in_(list(item_ids)))
    out: dict[int, list[ItemRanking]] = defaultdict(list)
    for item_id, name, r in session.execute(q):
        ranks = {r.response_ids[i]: rank for i, rank in stats.mid_ranks(r.order).items()}
        out[item_id].append(ItemRanking(item_id, name, r.id, ranks))
    return dict(out)


def consensus(rankings: list[ItemRanking], exclude: str | None = None) -> dict | None:
    """Response id -> mean rank over the rankings not by `exclude`; None under MIN_OTHERS of them.

    >>> rs = [ItemRanking(1, n, i, dict(zip([7, 8], r))) for i, (n, r) in enumerate([("a", (1, 2)), ("b", (1, 2)), ("c", (2, 1))])]
    >>> consensus(rs, exclude="a"), consensus(rs[:2], exclude="a")
    ({7: 1.5, 8: 1.5}, None)
    """
    others = [r for r in rankings if r.annotator != exclude]
    if len(others) < MIN_OTHERS:
        return None
    ids = sorted(set.intersection(*(set(r.ranks) for r in others)))
    return {rid: sum(r.ranks[rid] for r in others) / len(others) for rid in ids}


def tau(ranks: dict, reference: dict) -> float:
    """Kendall tau-b between two {response id: rank} maps over the ids they share (nan when undefined)."""
    ids = sorted(set(ranks) & set(reference))
    return stats.kendall_tau_b([ranks[i] for i in ids], [reference[i] for i in ids])


def consensus_taus(rankings: list[ItemRanking], only: str | None = None) -> list[tuple[str, float]]:
    """(annotator, tau-b against the consensus of the others) for each ranking of one item that has a defined one."""
    out = []
    for r in rankings:
        if only is not None and r.annotator != only:
            continue
        cons = consensus(rankings, exclude=r.annotator)
        t = tau(r.ranks, cons) if cons else math.nan
        if not math.isnan(t):
            out.append((r.annotator, t))
    return out


def gold_reference(item: LabelItem, gold: GoldItem) -> dict:
    """The reference order of a gold rank item as {response id: mid-rank}."""
    return {item.response_ids[i]: rank for i, rank in stats.mid_ranks(gold.order).items()}


@dataclass(frozen=True)
class Quality:
    annotator: str
    gold_answered: int  # gold rank items they ranked
    gold_correct: int  # of which agree with the reference (GOLD_RULE)
    consensus_items: int  # items they ranked that have a consensus of MIN_OTHERS others
    consensus_tau: float | None  # mean Kendall tau-b against those consensuses (None: no such item)

    @property
    def gold_accuracy(self) -> float | None:
        return self.gold_correct / self.gold_answered if self.gold_answered else None

    def flagged(self, threshold: float) -> bool:
        """Below the threshold on gold accuracy or on agreement with consensus (whichever is known)."""
        return any(v is not None and v < threshold for v in (self.gold_accuracy, self.consensus_tau))

    def as_lineage(self) -> dict:
        tau_ = None if self.consensus_tau is None else round(self.consensus_tau, 6)
        return {"gold_correct": self.gold_correct, "gold_answered": self.gold_answered,
                "consensus_items": self.consensus_items, "consensus_tau": tau_}


def annotator_quality(session: Session, include_simulated: bool = True) -> dict[str, Quality]:
    """Annotator name -> Quality, over every rank item in the app (names sorted)."""
    by_item = item_rankings(session, include_simulated)
    golds = {g.item_id: g for g in session.scalars(select(GoldItem)) if g.order}  # rank items (JSON null: write items)
    items = {it.id: it for it in session.scalars(select(LabelItem).where(LabelItem.id.in_(golds)))} if golds else {}
    answered, correct, taus = defaultdict(int), defaultdict(int), defaultdict(list)
    for item_id, rankings in by_item.items():
        reference = gold_reference(items[item_id], golds[item_id]) if item_id in golds else None
        for r in rankings:
            if reference is not None and r.annotator != golds[item_id].created_by:
                answered[r.annotator] += 1
                correct[r.annotator] += tau(r.ranks, reference) > 0  # nan > 0 is False: an all-tied ranking misses
        for name, t in consensus_taus(rankings):
            taus[name].append(t)
    names = sorted({r.annotator for rankings in by_item.values() for r in rankings})
    return {n: Quality(n, answered[n], correct[n], len(taus[n]), sum(taus[n]) / len(taus[n]) if taus[n] else None)
            for n in names}
