"""Feedback after a commit (issue 16, part 2): how the reward model and the other annotators ordered the answers
of the item a person has just ranked, and their running agreement with consensus.

Never before the submit (no anchoring): the Rank page shows it only for the item finished last on the
tab, and never while that item is on screen again (`handlers.rank_next`). Answers are named by the
letters this person saw them under (A, B, ... in their own shown order), never by model. The reward
model's order comes from the item's `item_priorities.scores` (the mean over the ensemble's scores per
answer, higher = better); the consensus is the mean rank over the other annotators once
`rlhf.data.gold.MIN_OTHERS` of them ranked the item. Admins turn all of it off with `show_feedback`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from labeling_app import render
from rlhf.data import gold
from rlhf.data.store.app_models import Assignment, LabelItem
from rlhf.data.store.loop_models import ItemPriority
from rlhf.data.store.models import Prompt, Ranking, User


@dataclass(frozen=True)
class Agreement:
    tau: float | None  # mean Kendall tau-b against the leave-one-out consensus
    items: int  # the person's items that have a consensus

    def line(self) -> str:
        if not self.items:
            return (f"Your agreement with consensus appears once items you ranked have been ranked by "
                    f"{gold.MIN_OTHERS} others too.")
        return (f"Your agreement with consensus: Kendall tau-b {self.tau:+.2f} over {self.items} item(s) "
                f"(1 = same order, 0 = unrelated).")


@dataclass(frozen=True)
class Feedback:
    prompt_ref: str
    yours: str  # "A > B = C"
    model: str | None  # the reward model's order of the same letters; None: not scored
    consensus: str | None  # "A (1.5) > C (2.0) > B (2.5)"; None: fewer than MIN_OTHERS others ranked it
    others: int  # other annotators who ranked the item
    agreement: Agreement

    def html(self) -> str:
        rows = [("You", self.yours),
                ("Reward model", self.model or "has not scored these answers yet"),
                (f"Consensus of {self.others} others (mean rank)" if self.consensus else "Consensus",
                 self.consensus or f"shown once {gold.MIN_OTHERS} others have ranked it (so far {self.others})")]
        body = "".join(f"<tr><th>{render.text(k)}</th><td>{render.text(v)}</td></tr>" for k, v in rows)
        return (f'<div id="feedback-panel" class="feedback"><div class="feedback-title">How others ordered '
                f'{render.text(self.prompt_ref)}, the item you just ranked</div><table>{body}</table>'
                f'<div class="feedback-agreement">{render.text(self.agreement.line())}</div></div>')


def _letters(groups: list[list[int]], letter: dict[int, str], scores: dict | None = None) -> str:
    def name(rid: int) -> str:
        return letter[rid] + (f" ({scores[rid]:.1f})" if scores is not None else "")

    return " > ".join(" = ".join(sorted(name(r) for r in g)) for g in groups)


def _group(values: dict[int, float], best_high: bool) -> list[list[int]]:
    """Response ids grouped by equal value, best first."""
    out: dict[float, list[int]] = {}
    for rid, v in values.items():
        out.setdefault(round(v, 6), []).append(rid)
    return [out[v] for v in sorted(out, reverse=best_high)]


def model_scores(scores: dict | None) -> dict[int, float]:
    """{response id: score} from an `item_priorities.scores` value (per-model lists are averaged).

    >>> model_scores({"responses": {"7": [0.5, 1.5], "8": -1}})
    {7: 1.0, 8: -1.0}
    """
    out = {}
    for rid, v in ((scores or {}).get("responses") or {}).items():
        vals = v if isinstance(v, list) else [v]
        nums = [float(x) for x in vals if isinstance(x, (int, float)) and not isinstance(x, bool)]
        if nums and str(rid).lstrip("-").isdigit():
            out[int(rid)] = sum(nums) / len(nums)
    return out


def agreement(db: Session, user: User) -> Agreement:
    """The person's running agreement with consensus over their rank items that have one."""
    items = list(db.scalars(select(Assignment.item_id).where(Assignment.user_id == user.id, Assignment.kind == "rank",
                                                              Assignment.result_type == "ranking")))
    by_item = gold.item_rankings(db, item_ids=items)
    taus = [t for rankings in by_item.values() for _, t in gold.consensus_taus(rankings, only=user.name)]
    return Agreement(sum(taus) / len(taus) if taus else None, len(taus))


def for_assignment(db: Session, user: User, assignment_id: int | None) -> Feedback | None:
    """The feedback on the person's submitted ranking of assignment `assignment_id`; None when it has none."""
    a = db.get(Assignment, int(assignment_id)) if assignment_id not in (None, "") else None
    if a is None or a.user_id != user.id or a.kind != "rank" or a.status != "done" or a.result_type != "ranking":
        return None
    r, item = db.get(Ranking, a.result_id), db.get(LabelItem, a.item_id)
    if r is None or item is None:
        return None
    shown = r.shown_order or r.response_ids
    letter = {rid: render.LETTERS[i] for i, rid in enumerate(shown)}
    yours = _letters([[r.response_ids[i] for i in g] for g in r.order], letter)
    prio = db.get(ItemPriority, item.id)
    scored = {rid: v for rid, v in model_scores(prio.scores if prio else None).items() if rid in letter}
    model = _letters(_group(scored, best_high=True), letter) if len(scored) == len(letter) else None
    rankings = gold.item_rankings(db, item_ids=[item.id]).get(item.id, [])
    cons = gold.consensus(rankings, exclude=user.name)
    cons = {rid: v for rid, v in (cons or {}).items() if rid in letter} or None
    consensus = _letters(_group(cons, best_high=False), letter, cons) if cons else None
    others = sum(x.annotator != user.name for x in rankings)
    ref = db.scalar(select(Prompt.external_id).where(Prompt.id == item.prompt_id))
    return Feedback(ref, yours, model, consensus, others, agreement(db, user))
