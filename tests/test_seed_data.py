"""Structural checks for the shipped seed data in data/seed/."""
import json
import re
from collections import Counter
from pathlib import Path

import pytest

SEED_DIR = Path(__file__).resolve().parent.parent / "data" / "seed"
HELDOUT = "heldout"


def _load(name):
    rows = []
    raw = (SEED_DIR / name).read_bytes().decode("utf-8")  # must be valid UTF-8
    for lineno, line in enumerate(raw.splitlines(), 1):
        assert line.strip(), f"{name}:{lineno} is blank"
        row = json.loads(line)
        assert isinstance(row, dict), f"{name}:{lineno} is not an object"
        rows.append(row)
    return rows


@pytest.fixture(scope="module")
def prompts():
    return _load("prompts.jsonl")


@pytest.fixture(scope="module")
def prompts_by_id(prompts):
    return {p["id"]: p for p in prompts}


@pytest.fixture(scope="module")
def demonstrations():
    return _load("demonstrations.jsonl")


@pytest.fixture(scope="module")
def rankings():
    return _load("rankings.jsonl")


def _domain(prompt):
    return prompt["tags"][0]


def _is_heldout(prompt):
    return HELDOUT in prompt["tags"]


def test_prompt_counts(prompts):
    assert len(prompts) >= 150
    domains = Counter(_domain(p) for p in prompts)
    assert len(domains) >= 5
    assert HELDOUT not in domains
    assert sum(_is_heldout(p) for p in prompts) == 40


def test_heldout_spread_over_domains(prompts):
    domains = {_domain(p) for p in prompts}
    heldout_domains = {_domain(p) for p in prompts if _is_heldout(p)}
    assert heldout_domains == domains


def test_prompt_ids_unique_and_well_formed(prompts):
    ids = [p["id"] for p in prompts]
    assert len(ids) == len(set(ids))
    for p in prompts:
        assert re.fullmatch(r"p-[a-z]+(?:-[a-z]+)*-\d{3}", p["id"]), p["id"]
        assert p["id"].startswith(f"p-{_domain(p)}-"), p["id"]


def test_prompt_tags(prompts):
    for p in prompts:
        tags = p["tags"]
        assert tags and all(re.fullmatch(r"[a-z]+(?:-[a-z]+)*", t) for t in tags), p["id"]
        assert tags[0] != HELDOUT, p["id"]
        assert set(tags[1:]) <= {HELDOUT}, p["id"]


def test_prompt_messages_alternate_and_end_with_user(prompts):
    for p in prompts:
        msgs = p["messages"]
        assert msgs, p["id"]
        for i, m in enumerate(msgs):
            assert m["role"] == ("user" if i % 2 == 0 else "assistant"), p["id"]
            assert isinstance(m["content"], str) and m["content"].strip(), p["id"]
        assert msgs[-1]["role"] == "user", p["id"]


def test_demonstration_counts(demonstrations, prompts_by_id):
    heldout = [d for d in demonstrations if _is_heldout(prompts_by_id[d["prompt_id"]])]
    train = [d for d in demonstrations if not _is_heldout(prompts_by_id[d["prompt_id"]])]
    assert len(train) >= 60
    assert len(heldout) == 20


def test_demonstrations_match_prompts(demonstrations, prompts_by_id):
    seen = set()
    for d in demonstrations:
        pid = d["prompt_id"]
        assert pid in prompts_by_id, pid
        assert pid not in seen, f"duplicate demonstration for {pid}"
        seen.add(pid)
        prompt_msgs = prompts_by_id[pid]["messages"]
        msgs = d["messages"]
        assert len(msgs) == len(prompt_msgs) + 1, pid
        assert msgs[: len(prompt_msgs)] == prompt_msgs, pid
        assert msgs[-1]["role"] == "assistant", pid


def test_demonstration_style(demonstrations):
    for d in demonstrations:
        answer = d["messages"][-1]["content"]
        words = len(answer.split())
        assert 20 <= words <= 80, (d["prompt_id"], words)
        assert answer.rstrip()[-1] in ".!?", d["prompt_id"]
        for filler in ("Great question", "As an AI", "I'm sorry"):
            assert filler not in answer, d["prompt_id"]


def test_rankings(rankings, prompts_by_id):
    assert rankings
    for r in rankings:
        pid = r["prompt_id"]
        assert pid in prompts_by_id, pid
        assert not _is_heldout(prompts_by_id[pid]), f"ranking uses held-out prompt {pid}"
        k = len(r["responses"])
        assert 2 <= k <= 5, pid
        assert all(isinstance(t, str) and t.strip() for t in r["responses"]), pid
        assert all(group for group in r["order"]), pid
        flat = [i for group in r["order"] for i in group]
        assert sorted(flat) == list(range(k)), f"order is not a permutation for {pid}"
        assert isinstance(r["all_bad"], bool), pid
    assert any(len(g) > 1 for r in rankings for g in r["order"]), "no ranking with a tie"
    assert any(r["all_bad"] for r in rankings), "no all_bad ranking"
