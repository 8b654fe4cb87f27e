"""What a dataset snapshot holds: one builder per dataset name (prompts, sft, preferences).

A builder turns the store's current rows into the rows of a `datasets` snapshot in trl's shapes,
plus the lineage recorded with the version. `rlhf.data.registry` freezes, hashes and versions what
the builders return; the pair rule itself lives in `rlhf.data.pairs`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from rlhf.data.gold import GOLD_RULE, annotator_quality
from rlhf.data.pairs import ranking_to_pairs
from rlhf.data.store.models import Demonstration, Prompt, Ranking, Response, User
from rlhf.errors import RlhfError


@dataclass(frozen=True)
class SnapshotOptions:
    include_pending: bool = False
    """also take items no expert has approved yet (default: approved only)"""
    include_simulated: bool = False
    """also take rankings and responses made by simulated annotators"""


Builder = Callable[[Session, SnapshotOptions], tuple[list[dict], dict]]
"""(session, options) -> (rows, lineage): rows are JSON-able dicts in a deterministic order."""


def _reviewed(session: Session, item, options: SnapshotOptions) -> list[tuple]:
    """(item, its prompt, annotator name) of every demonstration or ranking the options admit, oldest first."""
    status = item.status.in_(("approved", "pending")) if options.include_pending else item.status == "approved"
    q = (select(item, Prompt, User.name)
         .join(Prompt, item.prompt_id == Prompt.id)
         .outerjoin(User, item.annotator_id == User.id)
         .where(status)
         .order_by(item.id))
    if not options.include_simulated:
        q = q.where(item.origin != "simulated")
    return session.execute(q).all()


def build_prompts(session: Session, options: SnapshotOptions) -> tuple[list[dict], dict]:
    prompts = session.scalars(select(Prompt).order_by(Prompt.id)).all()
    rows = [{"prompt_id": p.external_id, "messages": p.messages, "tags": list(p.tags), "split": p.split} for p in prompts]
    return rows, {"source": "prompts", "row_ids": [p.id for p in prompts], "filter": "all prompts"}


def build_sft(session: Session, options: SnapshotOptions) -> tuple[list[dict], dict]:
    """Demonstrations in trl's conversational prompt/completion shape (loss on the answer only)."""
    rows, ids = [], []
    for d, p, annotator in _reviewed(session, Demonstration, options):
        rows.append({
            "prompt_id": p.external_id,
            "prompt": d.messages[:-1],
            "completion": d.messages[-1:],
            "tags": list(p.tags),
            "split": p.split,
            "demonstration_id": d.id,
            "annotator": annotator or "",
        })
        ids.append(d.id)
    filt = "approved demonstrations" + (" + pending" if options.include_pending else "")
    return rows, {"source": "demonstrations", "row_ids": ids, "filter": filt}


def build_preferences(session: Session, options: SnapshotOptions) -> tuple[list[dict], dict]:
    """One row per (chosen, rejected) pair as conversations, with the ranking and annotator on every pair.

    An "all bad" ranking yields no pairs (the RM must not learn that one bad answer beats another); its id
    is kept in the lineage.
    """
    rows, ids, all_bad = [], [], []
    for r, p, annotator in _reviewed(session, Ranking, options):
        ids.append(r.id)
        if r.all_bad:
            all_bad.append(r.id)
            continue
        texts = {resp.id: resp.text for resp in session.scalars(select(Response).where(Response.id.in_(r.response_ids)))}
        for better, worse in ranking_to_pairs(r.order):
            rows.append({
                "prompt_id": p.external_id,
                "prompt": p.messages,
                "chosen": [{"role": "assistant", "content": texts[r.response_ids[better]]}],
                "rejected": [{"role": "assistant", "content": texts[r.response_ids[worse]]}],
                "tags": list(p.tags),
                "split": p.split,
                "ranking_id": r.id,
                "annotator": annotator or "",
                "origin": r.origin,
            })
    filt = ("approved" + (" + pending" if options.include_pending else "") + " rankings"
            + (" incl. simulated" if options.include_simulated else ", people only"))
    if ids and not rows:
        raise RlhfError(f"{len(ids)} rankings ({filt}) yield no preference pairs: every one is all ties or marked "
                        f"all bad ({len(all_bad)}); a reward model needs at least one ranking with a better and a worse answer")
    # per annotator, for weighting them (rlhf.train.preferences.annotator_reliability(rows, gold=...)): gold accuracy
    # as (correct, answered) and agreement with consensus (rlhf.data.gold); in the lineage only, so rows and hash stay
    quality = {name: q.as_lineage() for name, q in annotator_quality(session, options.include_simulated).items()}
    return rows, {"source": "rankings", "row_ids": ids, "all_bad_ranking_ids": all_bad, "filter": filt,
                  "annotator_quality": quality, "gold_rule": GOLD_RULE}


BUILDERS: dict[str, Builder] = {"prompts": build_prompts, "sft": build_sft, "preferences": build_preferences}
