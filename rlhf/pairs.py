"""Rankings to preference pairs, and the `preferences` snapshot in trl's shape.

A ranking orders K responses best first, inner lists being ties. It yields every pair (i, j)
with i in a strictly better group than j: C(K,2) pairs minus the tied ones. An "all bad"
ranking yields no pairs; it is kept as a flag on the ranking (the RM must not learn that one
bad answer beats another).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from rlhf.registry import SnapshotOptions, _status_filter, builder
from rlhf.store.models import Prompt, Ranking, Response, User


def ranking_to_pairs(order: list[list[int]]) -> list[tuple[int, int]]:
    """(better, worse) index pairs from a best-first order with ties.

    >>> ranking_to_pairs([[1], [0, 2], [3]])
    [(1, 0), (1, 2), (1, 3), (0, 3), (2, 3)]
    """
    pairs = []
    for gi, group in enumerate(order):
        for worse_group in order[gi + 1:]:
            pairs.extend((better, worse) for better in group for worse in worse_group)
    return pairs


@builder("preferences")
def build_preferences(session: Session, options: SnapshotOptions) -> tuple[list[dict], dict]:
    """One row per (chosen, rejected) pair as conversations, with the ranking and annotator on every pair."""
    q = (select(Ranking, Prompt, User.name)
         .join(Prompt, Ranking.prompt_id == Prompt.id)
         .outerjoin(User, Ranking.annotator_id == User.id)
         .where(_status_filter(Ranking.status, options))
         .order_by(Ranking.id))
    if not options.include_simulated:
        q = q.where(Ranking.origin != "simulated")
    rows, ids, all_bad = [], [], []
    for r, p, annotator in session.execute(q).all():
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
    return rows, {"source": "rankings", "row_ids": ids, "all_bad_ranking_ids": all_bad, "filter": filt}
