"""How unsure the reward model is about each rank item: the priorities of the uncertainty queue (issue 16, part 1).

Every candidate of every open rank item is scored by the reward model(s) (`rlhf.train.reward.score_texts`, one
item's candidates always in the same pass); each item gets a priority, higher = label it sooner:

- one RM: the smallest reward margin between any two of the item's candidates, negated. A small margin means
  the RM cannot tell two answers apart, so a person's ranking of them teaches it the most (margin sampling,
  Scheffer et al. 2001; for reward models, the "uncertain pairs" of Christiano et al. 2017, sec. 2.2.4).
- several RMs (an ensemble: rm@v1,rm@v2, or models trained on bootstrap resamples of the preferences): their
  disagreement, the mean over pairs of models of the share of candidate pairs the two order differently
  (query by committee, Seung et al. 1992), ties broken by the ensemble-mean margin so no two items sit level.

Shapes: K candidates of an item, M reward models.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass

from rlhf.errors import RlhfError

TIE_BREAK = 1e-3  # weight of the margin term under an ensemble's disagreement: below one disagreement step (>= 1/C(K,2)/C(M,2))


def margin_priority(scores: list[float]) -> float:
    """-(smallest |r_i - r_j| over the K candidates): 0 is a dead heat, very negative = the RM is sure.

    >>> margin_priority([0.5, 2.0, 0.75])
    -0.25
    """
    if len(scores) < 2:
        raise RlhfError("an item needs at least two candidates to have a margin")
    s = sorted(scores)
    return -min(b - a for a, b in zip(s, s[1:]))


def rank_disagreement(a: list[float], b: list[float]) -> float:
    """Share of candidate pairs two models order differently (a tie in one model and not the other counts half).

    >>> rank_disagreement([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    0.0
    >>> rank_disagreement([1.0, 2.0, 3.0], [3.0, 2.0, 1.0])
    1.0
    >>> rank_disagreement([1.0, 2.0, 3.0], [2.0, 1.0, 3.0])  # one of three pairs swapped
    0.3333333333333333
    """
    sign = lambda x: (x > 0) - (x < 0)  # noqa: E731
    pairs = list(itertools.combinations(range(len(a)), 2))
    return sum(abs(sign(a[i] - a[j]) - sign(b[i] - b[j])) / 2 for i, j in pairs) / len(pairs)


def ensemble_priority(scores: list[list[float]]) -> tuple[float, float]:
    """(priority, disagreement) of one item from M models' scores (M lists of K): the mean pairwise rank
    disagreement, plus TIE_BREAK * exp(-margin of the mean score) so equal disagreements order by margin.

    >>> p, d = ensemble_priority([[0.0, 1.0], [1.0, 0.0]])
    >>> d, round(p - d, 6)  # the two models disagree on the only pair; the mean scores tie (margin 0)
    (1.0, 0.001)
    """
    if len(scores) == 1:
        return margin_priority(scores[0]), 0.0
    d = sum(rank_disagreement(a, b) for a, b in itertools.combinations(scores, 2)) / math.comb(len(scores), 2)
    mean = [sum(col) / len(col) for col in zip(*scores)]
    return d + TIE_BREAK * math.exp(margin_priority(mean)), d


def item_priority(scores: list[list[float]]) -> tuple[float, dict]:
    """(priority, what to store beside it) for one item: M lists of K scores."""
    margin = -margin_priority([sum(col) / len(col) for col in zip(*scores)])
    if len(scores) == 1:
        return -margin, {"margin": margin}
    priority, disagreement = ensemble_priority(scores)
    return priority, {"margin": margin, "disagreement": disagreement}


@dataclass
class Report:
    models: list[str]  # pinned references
    items: int
    responses: int
    seconds: float
    top: list[tuple[int, float]]  # (item id, priority) of the most uncertain items

    def summary(self) -> dict:
        return {"models": self.models, "items": self.items, "responses": self.responses,
                "seconds": round(self.seconds, 1), "top": [[i, round(p, 6)] for i, p in self.top]}


def score_items(model, tokenizer, items, batch_items: int = 8, max_length: int = 256, progress: bool = False) -> list[list[float]]:
    """One model's scores of every item's candidates (a list of K per item); `batch_items` whole items per pass."""
    from tqdm.auto import tqdm

    from rlhf.train.reward import score_texts

    out: list[list[float]] = []
    for start in tqdm(range(0, len(items), batch_items), desc="scoring items", unit="batch", disable=not progress):
        chunk = items[start:start + batch_items]
        prompts = [it.prompt for it in chunk for _ in it.texts]
        texts = [t for it in chunk for t in it.texts]
        flat = score_texts(model, tokenizer, prompts, texts, batch_size=len(texts), max_length=max_length)
        at = 0
        for it in chunk:
            out.append(flat[at:at + len(it.texts)])
            at += len(it.texts)
    return out


def load_reward_model(spec: str):
    """(pinned reference, model, tokenizer) of a registered or local reward model (one-output sequence classifier)."""
    from rlhf.train import modeling

    resolved = modeling.resolve(spec)
    tokenizer = modeling.load_tokenizer(resolved)
    net = modeling.load_model(resolved, mode="full", task="reward")
    if getattr(net.config, "num_labels", 1) != 1:
        raise RlhfError(f"--model {spec}: has {net.config.num_labels} outputs; a reward model has one (train one with `just rm`)")
    return resolved.ref or spec, net, tokenizer


def priorities_for(items, scores_by_model: list[list[list[float]]], refs: list[str]):
    """`Priority` rows from M models' scores (per model: a list of K per item)."""
    from rlhf.data.priorities import Priority

    rows = []
    for n, it in enumerate(items):
        per_model = [scores[n] for scores in scores_by_model]  # (M, K)
        priority, extra = item_priority(per_model)
        responses = {str(rid): [round(s[k], 6) for s in per_model] for k, rid in enumerate(it.response_ids)}
        rows.append(Priority(it.item_id, ",".join(refs), priority, {"responses": responses, **extra}))
    return rows


def prioritize(models: list[str], batch_items: int = 8, max_length: int = 256, limit: int | None = None,
               progress: bool = True) -> Report:
    """Score every open rank item with `models` (one RM, or several as an ensemble) and store each item's priority."""
    from rlhf.data.priorities import open_rank_items, write_priorities
    from rlhf.data.store import session_scope

    if not models:
        raise RlhfError("--model: name at least one reward model (e.g. rm@latest, or rm@v1,rm@v2 for an ensemble)")
    t0 = time.time()
    with session_scope() as s:
        items = open_rank_items(s, limit)
    refs, scores_by_model = [], []
    for spec in models:
        ref, net, tokenizer = load_reward_model(spec)
        refs.append(ref)
        scores_by_model.append(score_items(net, tokenizer, items, batch_items, max_length, progress) if items else [])
        del net
    if len(set(refs)) != len(refs):
        raise RlhfError(f"--model {','.join(models)}: names one model twice ({', '.join(refs)}); an ensemble needs distinct models")
    rows = priorities_for(items, scores_by_model, refs)
    with session_scope() as s:  # one transaction: every item's new priority or none
        write_priorities(s, rows)
    top = sorted(((r.item_id, r.priority) for r in rows), key=lambda x: -x[1])[:5]
    return Report(refs, len(items), sum(len(it.texts) for it in items), time.time() - t0, top)
