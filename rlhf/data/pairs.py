"""Rankings to preference pairs, and the prompt-disjoint train/eval split of a `preferences` snapshot.

A ranking orders K responses best first, inner lists being ties. It yields every pair (i, j)
with i in a strictly better group than j: C(K,2) pairs minus the tied ones. An "all bad"
ranking yields no pairs; it is kept as a flag on the ranking (the RM must not learn that one
bad answer beats another). The snapshot's rows are built in `rlhf.data.snapshots`.
"""

from __future__ import annotations

from rlhf.errors import RlhfError


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


def pair_count(order: list[list[int]], all_bad: bool = False) -> int:
    """Pairs a ranking yields: C(K,2) minus the pairs inside tie groups; none when all bad.

    >>> pair_count([[0], [1, 2], [3]])
    5
    """
    if all_bad:
        return 0
    k = sum(len(g) for g in order)
    return k * (k - 1) // 2 - sum(len(g) * (len(g) - 1) // 2 for g in order)


def prompt_disjoint_split(prompt_ids: list[str], eval_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, eval) row indices such that no prompt is in both: a seeded `eval_fraction` of the distinct prompts
    (at least one, and at least one left to train on) goes to eval with all its rows.

    >>> prompt_disjoint_split(["a", "a", "b", "c"], 0.34, seed=0)
    ([0, 1, 3], [2])
    """
    import random

    distinct = sorted(set(prompt_ids))
    if len(distinct) < 2:
        raise RlhfError(f"need pairs from at least 2 prompts to hold some out for evaluation, got {len(distinct)}")
    n_eval = min(len(distinct) - 1, max(1, round(eval_fraction * len(distinct))))
    held = set(random.Random(seed).sample(distinct, n_eval))
    train = [i for i, p in enumerate(prompt_ids) if p not in held]
    evaluation = [i for i, p in enumerate(prompt_ids) if p in held]
    return train, evaluation


def split_pairs(ds, eval_fraction: float = 0.2, seed: int = 0):
    """(train, eval, how) from a `preferences` snapshot, prompt-disjoint.

    The snapshot's "heldout" split (prompts tagged heldout) is the eval set when it has pairs, so
    every stage evaluates on the same prompts; else a seeded `eval_fraction` of the prompts.
    """
    if len(ds) == 0:
        raise RlhfError("the preferences snapshot has no pairs (every ranking all ties or all bad): nothing to learn from")
    splits = ds["split"]
    if "heldout" in splits and any(s != "heldout" for s in splits):
        train_idx = [i for i, s in enumerate(splits) if s != "heldout"]
        eval_idx = [i for i, s in enumerate(splits) if s == "heldout"]
        how = "the snapshot's heldout split"
    else:
        train_idx, eval_idx = prompt_disjoint_split(ds["prompt_id"], eval_fraction, seed)
        how = f"a seeded {eval_fraction:.0%} of prompts (seed {seed}; the snapshot has no usable heldout split)"
    train, evaluation = ds.select(train_idx), ds.select(eval_idx)
    overlap = set(train["prompt_id"]) & set(evaluation["prompt_id"])
    if overlap:  # a prompt tagged heldout in one import and not in another cannot happen, but never train on eval
        raise RlhfError(f"prompt {sorted(overlap)[0]!r} is in both the train and the eval pairs")
    return train, evaluation, how
