"""Preference pairs as a reward model learns them: grouped by prompt, with the votes of several annotators.

A `preferences` snapshot has one row per judgement: an annotator ranked `chosen` over `rejected` for a prompt.
Here the rows of one prompt become one `PromptGroup` (its distinct answers and every judged pair of them), so a
listwise trainer scores each answer once and learns from all C(K,2) pairs of a ranking in one batch element
(InstructGPT, Ouyang et al. 2022, sec. 3.5). When several annotators judged the same two answers, the pair
carries their votes and `labels` says what the reward model is trained towards:

- `hard`: the majority side (target 1); a tie of votes gives no pair. With one annotator per pair this is the
  ordinary Bradley-Terry label.
- `soft`: the vote fraction, target P(a > b) = votes_a / (votes_a + votes_b) (a noisy-label cross-entropy).
- `weighted`: the vote fraction with each vote weighted by its annotator's reliability, the log-odds of how often
  they agree with the other annotators on shared pairs (a one-step Dawid & Skene 1979 estimate, Laplace-smoothed;
  an annotator at or below chance gets weight 0, one with no shared pairs the median weight).

Reliability comes from the data alone; gold items, where the labeling app has them, refine it
(`annotator_reliability(..., gold=...)`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from rlhf.errors import RlhfError

LABELS = ("hard", "soft", "weighted")


@dataclass
class PromptGroup:
    """One prompt's distinct answers and its judged pairs."""

    prompt: list[dict]  # the chat messages
    responses: list[str]  # distinct answer texts
    pairs: list[tuple[int, int, float]] = field(default_factory=list)  # (a, b, target P(answer a beats answer b))
    votes: list[tuple[float, float]] = field(default_factory=list)  # per pair: (votes for a, votes for b), weighted


def _judgements(rows) -> dict:
    """prompt key -> (messages, {frozenset(answers): [(winner answer, annotator), ...]})."""
    out: dict = {}
    for row in rows:
        key = repr(row["prompt"])
        messages, pairs = out.setdefault(key, (row["prompt"], defaultdict(list)))
        chosen, rejected = row["chosen"][-1]["content"], row["rejected"][-1]["content"]
        if chosen == rejected:
            continue
        pairs[frozenset((chosen, rejected))].append((chosen, row.get("annotator") or "(unknown)"))
    return out


def annotator_reliability(rows, gold: dict[str, tuple[int, int]] | None = None) -> dict[str, float]:
    """Annotator -> probability of agreeing with the other annotators' majority on pairs they share, Laplace-smoothed
    ((agree + 1) / (shared + 2)); `gold` adds each annotator's (correct, answered) gold items to the same counts.

    >>> rows = [{"prompt": "p", "chosen": [{"content": w}], "rejected": [{"content": l}], "annotator": a}
    ...         for a, w, l in [("ann", "x", "y"), ("bob", "x", "y"), ("cy", "y", "x")]]
    >>> {k: round(v, 2) for k, v in annotator_reliability(rows).items()}  # ann and bob: the others split 1-1
    {'ann': 0.5, 'bob': 0.5, 'cy': 0.33}
    """
    agree, shared = defaultdict(float), defaultdict(float)
    for _, pairs in _judgements(rows).values():
        for judged in pairs.values():
            for i, (winner, who) in enumerate(judged):
                others = [w for j, (w, _) in enumerate(judged) if j != i]
                if not others:
                    continue
                for_it = sum(w == winner for w in others)
                against = len(others) - for_it
                if for_it == against:
                    continue  # no majority among the others: says nothing about this annotator
                shared[who] += 1
                agree[who] += for_it > against
    for who, (correct, answered) in (gold or {}).items():
        agree[who] += correct
        shared[who] += answered
    names = {who for _, pairs in _judgements(rows).values() for judged in pairs.values() for _, who in judged}
    return {who: (agree[who] + 1) / (shared[who] + 2) for who in sorted(names)}


def reliability_weights(reliability: dict[str, float]) -> dict[str, float]:
    """Log-odds vote weights, 0 at or below chance; annotators without shared pairs (exactly 0.5) get the median
    weight of the others (1.0 when there are none).

    >>> reliability_weights({"a": 0.9, "b": 0.5, "c": 0.3})
    {'a': 2.1972245773362196, 'b': 2.1972245773362196, 'c': 0.0}
    """
    weights = {who: max(0.0, math.log(p / (1 - p))) for who, p in reliability.items() if p != 0.5}
    known = sorted(weights.values())
    median = known[len(known) // 2] if known else 1.0
    return {who: weights.get(who, median) for who in reliability}


def prompt_groups(rows, labels: str = "hard", weights: dict[str, float] | None = None) -> list[PromptGroup]:
    """The rows (a preferences snapshot or part of one) as prompt groups with targets per `labels`
    (`weights`: the annotator vote weights `weighted` uses, from `reliability_weights`)."""
    if labels not in LABELS:
        raise RlhfError(f"--labels {labels!r}: expected one of {', '.join(LABELS)}")
    if labels == "weighted" and weights is None:
        weights = reliability_weights(annotator_reliability(rows))
    groups = []
    for messages, pairs in _judgements(rows).values():
        answers: dict[str, int] = {}
        group = PromptGroup(prompt=list(messages), responses=[])
        for key, judged in pairs.items():
            a, b = sorted(key)
            va = sum((weights.get(who, 1.0) if labels == "weighted" else 1.0) for w, who in judged if w == a)
            vb = sum((weights.get(who, 1.0) if labels == "weighted" else 1.0) for w, who in judged if w == b)
            if va + vb <= 0 or (labels == "hard" and va == vb):
                continue
            target = float(va > vb) if labels == "hard" else va / (va + vb)
            ia, ib = (answers.setdefault(t, len(answers)) for t in (a, b))
            group.pairs.append((ia, ib, target))
            group.votes.append((va, vb))
        group.responses = list(answers)
        if group.pairs:
            groups.append(group)
    if not groups:
        raise RlhfError("no preference pairs to learn from: every judged pair is tied or carries no vote weight")
    return groups
