"""The DPO stage end to end on a tiny policy in a fresh workspace: trl DPOTrainer with a LoRA policy whose
reference is the adapter disabled, judged like PPO, registered with its lineage."""

from __future__ import annotations

import json

import pytest

from tests.conftest import write_jsonl
from test_ppo_stage import check_win_rate

TRAIN = [f"How do I keep basil fresh, tip {i}?" for i in range(6)]
HELDOUT = ["Why is the sky blue?", "What is a prime number?"]


@pytest.fixture
def refs(workspace, tmp_path):
    """(prompts@v1, preferences@v1) from prompts and two-answer rankings (the first answer always better)."""
    from rlhf.data import registry
    from rlhf.data.ingest import import_prompts, import_rankings
    from rlhf.data.store import session_scope

    rows = [{"id": f"t{i}", "messages": [{"role": "user", "content": q}]} for i, q in enumerate(TRAIN)]
    rows += [{"id": f"h{i}", "messages": [{"role": "user", "content": q}], "tags": ["heldout"]} for i, q in enumerate(HELDOUT)]
    rankings = [{"prompt_id": r["id"], "responses": [f"Keep it in water, idea {i}.", f"no idea {i}"], "order": [[0], [1]],
                 "annotator": "ann"} for i, r in enumerate(rows)]
    with session_scope() as s:
        import_prompts(s, write_jsonl(tmp_path / "prompts.jsonl", rows))
        import_rankings(s, write_jsonl(tmp_path / "rankings.jsonl", rankings), approved_by="expert")
    with session_scope() as s:
        return registry.snapshot(s, "prompts")[0].ref, registry.snapshot(s, "preferences")[0].ref


def test_dpo_trains_against_the_disabled_adapter_and_registers_dpo_v1(workspace, refs, tiny_model, capsys):
    from rlhf.data.registry import get_model_version
    from rlhf.data.store import session_scope
    from stages import dpo as stage

    prompts, prefs = refs
    result = stage.main(["--policy", str(tiny_model), "--reward-model", "rubric:concise_helpful", "--dataset", prefs,
                         "--prompts", prompts, "--epochs", "2", "--batch-size", "2", "--lr", "1e-3", "--max-new-tokens", "6",
                         "--eval-batch-size", "2", "--lora-layers", "1", "--report-to", "none", "--checkpoint-every", "0"])
    out = capsys.readouterr().out
    assert result["model"] == "dpo@v1"
    for side in ("sft", "dpo"):
        assert set(result[side]) == {"reward", "rubric", "kl", "length", "eos"}
    assert result["sft"]["kl"] == 0.0
    check_win_rate(result, sorted((workspace / "runs").glob("dpo-*"))[-1] / "heldout_samples.json", "dpo", len(HELDOUT))
    last = out.strip().splitlines()[-1]
    assert last.startswith("RESULT ") and json.loads(last[len("RESULT "):])["dpo"]["model"] == "dpo@v1"
    with session_scope() as s:
        mv = get_model_version(s, "dpo@v1")
        assert mv.stage == "dpo" and mv.dataset_versions == [prefs, prompts] and mv.base == str(tiny_model)
        assert mv.metrics["train_pairs"] == len(TRAIN)  # the pairs of held-out prompts never train
        path = mv.path
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(path)
    assert not any("lora" in n for n, _ in merged.named_parameters())  # the adapter is merged in


def test_dpo_clear_errors(workspace, refs, tiny_model):
    from rlhf.errors import RlhfError
    from stages import dpo as stage

    prompts, prefs = refs
    with pytest.raises(RlhfError, match="beta 0.0: must be > 0"):
        stage.main(["--policy", str(tiny_model), "--reward-model", "rubric:concise_helpful", "--dataset", prefs,
                    "--prompts", prompts, "--beta", "0", "--report-to", "none"])
    with pytest.raises(RlhfError, match="unknown --mode 'full'"):
        stage.main(["--policy", str(tiny_model), "--mode", "full", "--report-to", "none"])
