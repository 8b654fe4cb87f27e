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
    assert run_cli("import", "prompts", str(SEED / "prompts.jsonl")).returncode == 0
    prompts = run_cli("registry", "snapshot", "prompts").stdout.strip()
    gen = run_cli("generate", "--model", str(tiny_model), "--prompts", prompts, "--k", "3", "--max-new-tokens", "6")
    assert gen.returncode == 0, gen.stderr
    result = active_learning.main(["--smoke", "--home", str(workspace), "--sft", str(tiny_model), "--keep-layers", "2",
                                   "--lora-layers", "1", "--work", str(tmp_path / "work"), "--guide", "concise_helpful"])
    for strategy in ("random", "uncertainty"):
        (curve,) = result["curves"][strategy]
        assert [p["rankings"] for p in curve] == [4, 8]
        assert all(0.0 <= p["accuracy"] <= 1.0 and p["pairs"] > 0 for p in curve)
    # the same first prompts and the same annotator: the two strategies agree before they choose
    assert result["curves"]["random"][0][0] == result["curves"]["uncertainty"][0][0] | {
        "seconds": result["curves"]["random"][0][0]["seconds"]}
    assert result["heldout_prompts"] == 8 and (tmp_path / "work" / "active_learning").is_dir()
    assert result["plot"].endswith(".png") and open(result["plot"], "rb").read(4) == b"\x89PNG"
    assert json.loads(json.dumps(result))["bench"] == "active_learning"
    from rlhf.train import listwise

    assert listwise.cache_trunk.__module__ == "rlhf.train.listwise"  # the bench's shared trunk is gone after the run
