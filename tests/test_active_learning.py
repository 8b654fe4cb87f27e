"""bench/active_learning.py end to end on a tiny model: both strategies' curves over the same budgets, the summary's
rule (the fewest rankings at which uncertainty reaches random's final accuracy), the plot and the RESULT line."""

from __future__ import annotations

import json
import sys

import pytest

from conftest import REPO, SEED, run_cli

sys.path.insert(0, str(REPO / "bench"))
import active_learning  # noqa: E402


def test_summary_finds_where_uncertainty_reaches_random():
    curve = lambda *acc: [{"rankings": 20 * (i + 1), "accuracy": a} for i, a in enumerate(acc)]  # noqa: E731
    s = active_learning.summarize({"random": [curve(0.6, 0.7, 0.8), curve(0.6, 0.7, 0.8)],
                                   "uncertainty": [curve(0.6, 0.8, 0.9), curve(0.6, 0.79, 0.9)]})
    assert (s["random_final"], s["random_budget"], s["uncertainty_reaches_at"]) == (pytest.approx(0.8), 60, 60)
    assert not s["target_met"]  # 0.795 at 40 is short of 0.8: 60 of 60 rankings
    s = active_learning.summarize({"random": [curve(0.6, 0.7, 0.8, 0.8, 0.8)], "uncertainty": [curve(0.6, 0.8, 0.9, 0.9, 0.9)]})
    assert (s["uncertainty_reaches_at"], s["share_of_rankings"], s["target_met"]) == (40, 0.4, True)


def test_smoke_run_on_a_tiny_model(workspace, tmp_path, tiny_model):
    some = tmp_path / "prompts.jsonl"  # 100 of the seed prompts: enough with answers the rubric tells apart
    some.write_text("".join((SEED / "prompts.jsonl").read_text().splitlines(keepends=True)[:100]))
    assert run_cli("import", "prompts", str(some)).returncode == 0
    prompts = run_cli("registry", "snapshot", "prompts").stdout.strip()
    gen = run_cli("generate", "--model", str(tiny_model), "--prompts", prompts, "--k", "3", "--max-new-tokens", "6")
    assert gen.returncode == 0, gen.stderr
    result = active_learning.main(["--smoke", "--home", str(workspace), "--sft", str(tiny_model), "--keep-layers", "2",
                                   "--lora-layers", "1", "--work", str(tmp_path / "work"), "--guide", "concise_helpful"])
    for strategy in ("random", "uncertainty"):
        (curve,) = result["curves"][strategy]
        assert [p["rankings"] for p in curve] == [4, 8]
        # an accuracy is a share of the held-out pairs judged
        assert all(p["pairs"] > 0 and abs(p["accuracy"] * p["pairs"] - round(p["accuracy"] * p["pairs"])) < 1e-6
                   for p in curve), curve
    # the same first prompts and the same annotator: the two strategies agree before they choose
    assert result["curves"]["random"][0][0] == result["curves"]["uncertainty"][0][0] | {
        "seconds": result["curves"]["random"][0][0]["seconds"]}
    assert result["heldout_prompts"] == 8 and (tmp_path / "work" / "active_learning").is_dir()
    assert result["plot"].endswith(".png") and open(result["plot"], "rb").read(4) == b"\x89PNG"
    assert json.loads(json.dumps(result))["bench"] == "active_learning"
    from rlhf.train import listwise

    assert listwise.cache_trunk.__module__ == "rlhf.train.listwise"  # the bench's shared trunk is gone after the run


def test_the_benchs_fast_scores_are_the_reward_models_scores(workspace, tiny_model):
    """The bench scores held-out candidates from its cached trunk; its accuracy must be `reward.evaluate`'s
    `accuracy/rubric` of the same model on the same pairs."""
    from rlhf.rubrics import load_rubric, prompt_text
    from rlhf.train.preferences import prompt_groups
    from rlhf.train.reward import evaluate
    from rlhf.train.simulate import noisy_order
    import random

    rows = [{"prompt": [{"role": "user", "content": f"Tell me about item {i}."}],
             "texts": [f"Item {i} is fine.", f"Item {i} is a thing that exists, probably, I think.", "No.",
                       f"Item {i}: useful, cheap and easy to find in shops."]} for i in range(6)]
    _, guide = load_rubric("concise_helpful")
    gold = [[float(guide(prompt_text(r["prompt"]), t)) for t in r["texts"]] for r in rows]
    with active_learning.Bench(str(tiny_model), 2, 1, 64) as bench:
        train = [p for r, g in zip(rows[:3], gold) for p in active_learning.preference_rows(r, noisy_order(g, 0.0, random.Random(0)), "sim:x:0")]
        model = bench.fit(prompt_groups(train), 1.0, 1e-3, 0)
        fast = active_learning.rubric_accuracy(bench.scores(model, rows[3:]), gold[3:])
    pairs = [p for r, g in zip(rows[3:], gold[3:]) for p in active_learning.preference_rows(r, noisy_order(g, 0.0, random.Random(0)), "sim:x:0")]
    slow = evaluate(model, bench.tokenizer, pairs, rubric="concise_helpful", max_length=64, progress=False)
    assert slow["rubric/pairs"] > 0 and fast == pytest.approx(slow["accuracy/rubric"])
