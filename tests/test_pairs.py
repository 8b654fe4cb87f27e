"""Rankings to pairs (ties, all-bad, K = 2..9), the preferences snapshot, and the prompt-disjoint split."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from rlhf.errors import RlhfError
from rlhf.data.pairs import pair_count, prompt_disjoint_split, ranking_to_pairs, split_pairs
from tests.conftest import write_jsonl


def random_order(k: int, rng: random.Random) -> list[list[int]]:
    """A random best-first order of k items with random tie groups."""
    items = list(range(k))
    rng.shuffle(items)
    order, i = [], 0
    while i < k:
        size = rng.choice([1, 1, 1, 2, 3])
        order.append(items[i:i + size])
        i += size
    return order


def test_pairs_hand_computed():
    assert ranking_to_pairs([[0], [1]]) == [(0, 1)]
    assert ranking_to_pairs([[2], [0], [1]]) == [(2, 0), (2, 1), (0, 1)]
    assert ranking_to_pairs([[1], [0, 2], [3]]) == [(1, 0), (1, 2), (1, 3), (0, 3), (2, 3)]  # (0, 2) tied: dropped
    assert ranking_to_pairs([[0, 1, 2]]) == []  # all tied: nothing to learn
    assert pair_count([[0], [1]], all_bad=True) == 0


@pytest.mark.parametrize("k", range(2, 10))
def test_pair_count_is_c_k_2_minus_tied(k):
    rng = random.Random(k)
    for _ in range(20):
        order = random_order(k, rng)
        pairs = ranking_to_pairs(order)
        tied = sum(math.comb(len(g), 2) for g in order)
        assert len(pairs) == math.comb(k, 2) - tied == pair_count(order)
        assert len(set(pairs)) == len(pairs)
        rank = {i: g for g, grp in enumerate(order) for i in grp}
        assert all(rank[a] < rank[b] for a, b in pairs)  # better always first
        # every non-tied unordered pair appears exactly once
        assert {frozenset(p) for p in pairs} == {frozenset((a, b)) for a, b in itertools.combinations(range(k), 2)
                                                 if rank[a] != rank[b]}
    strict = [[i] for i in range(k)]
    assert len(ranking_to_pairs(strict)) == math.comb(k, 2)


def test_prompt_disjoint_split():
    ids = [f"p{i % 25}" for i in range(200)]
    train, ev = prompt_disjoint_split(ids, 0.2, seed=3)
    assert sorted(train + ev) == list(range(200))
    assert not {ids[i] for i in train} & {ids[i] for i in ev}
    assert len({ids[i] for i in ev}) == 5
    assert prompt_disjoint_split(ids, 0.2, seed=3) == (train, ev)  # seeded
    assert prompt_disjoint_split(ids, 0.2, seed=4) != (train, ev)
    with pytest.raises(RlhfError, match="at least 2 prompts"):
        prompt_disjoint_split(["a", "a"], 0.5, seed=0)


def test_split_pairs_prefers_heldout_split():
    import datasets

    rows = [{"prompt_id": f"p{i}", "split": "heldout" if i < 3 else "train"} for i in range(10) for _ in range(2)]
    train, ev, how = split_pairs(datasets.Dataset.from_list(rows), 0.5, 0)
    assert "heldout" in how and set(ev["prompt_id"]) == {"p0", "p1", "p2"} and len(train) == 14
    only_train = datasets.Dataset.from_list([{**r, "split": "train"} for r in rows])
    train, ev, how = split_pairs(only_train, 0.2, 0)
    assert "seeded" in how and not set(train["prompt_id"]) & set(ev["prompt_id"]) and len(ev) == 4


def test_preferences_snapshot_rows(workspace, tmp_path):
    from rlhf.data import registry
    from rlhf.data.store import session_scope
    from rlhf.data.ingest import import_prompts, import_rankings

    prompts = [{"id": f"q{i}", "messages": [{"role": "user", "content": f"Question {i}?"}],
                "tags": ["t"] + (["heldout"] if i == 2 else [])} for i in range(3)]
    rankings = [
        {"prompt_id": "q0", "responses": ["a0", "b0", "c0", "d0"], "order": [[1], [0, 2], [3]], "annotator": "ann"},  # 5 pairs
        {"prompt_id": "q1", "responses": ["a1", "b1", "c1"], "order": [[0], [1], [2]], "all_bad": True, "annotator": "bob"},  # 0
        {"prompt_id": "q2", "responses": ["a2", "b2"], "order": [[1], [0]], "annotator": "bob"},  # 1
    ]
    with session_scope() as s:
        import_prompts(s, write_jsonl(tmp_path / "p.jsonl", prompts))
        import_rankings(s, write_jsonl(tmp_path / "r.jsonl", rankings), approved_by="lead")
    with session_scope() as s:
        dv, _ = registry.snapshot(s, "preferences")
        ds = registry.load(s, dv.ref)
        lineage = dv.lineage
    assert len(ds) == 6
    assert {r["chosen"][0]["content"] for r in ds if r["prompt_id"] == "q0"} == {"b0", "a0", "c0"}
    assert all(r["ranking_id"] and r["annotator"] for r in ds)
    assert {(r["prompt_id"], r["annotator"], r["split"]) for r in ds} == {("q0", "ann", "train"), ("q2", "bob", "heldout")}
    assert len(lineage["all_bad_ranking_ids"]) == 1
    row = ds[0]
    assert row["prompt"] == prompts[0]["messages"] and row["chosen"][0]["role"] == "assistant"


def test_all_ties_snapshot_is_a_clear_error(workspace, tmp_path):
    from rlhf.data import registry
    from rlhf.data.store import session_scope
    from rlhf.data.ingest import import_prompts, import_rankings

    with session_scope() as s:
        import_prompts(s, write_jsonl(tmp_path / "p.jsonl", [{"id": "q", "messages": [{"role": "user", "content": "Q?"}]}]))
        import_rankings(s, write_jsonl(tmp_path / "r.jsonl", [{"prompt_id": "q", "responses": ["x", "y"], "order": [[0, 1]]}]),
                        approved_by="lead")
    with pytest.raises(RlhfError, match="no preference pairs"):
        with session_scope() as s:
            registry.snapshot(s, "preferences")
