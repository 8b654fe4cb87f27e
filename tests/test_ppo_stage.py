"""The PPO stage end to end on a tiny policy and a tiny reward model in a fresh workspace."""

from __future__ import annotations

import json

import pytest
import torch

from rlhf.errors import RlhfError
from tests.conftest import write_jsonl

TRAIN = [f"How do I keep basil fresh, tip {i}?" for i in range(6)]
HELDOUT = ["Why is the sky blue?", "What is a prime number?", "How do I boil an egg?"]


@pytest.fixture
def prompts_ref(workspace, tmp_path):
    from rlhf.data import registry
    from rlhf.data.store import session_scope
    from rlhf.data.ingest import import_prompts

    rows = [{"id": f"t{i}", "messages": [{"role": "user", "content": q}], "tags": ["cooking"]} for i, q in enumerate(TRAIN)]
    rows += [{"id": f"h{i}", "messages": [{"role": "user", "content": q}], "tags": ["heldout"]} for i, q in enumerate(HELDOUT)]
    with session_scope() as s:
        import_prompts(s, write_jsonl(tmp_path / "prompts.jsonl", rows))
        return registry.snapshot(s, "prompts")[0].ref


@pytest.fixture
def tiny_rm(tmp_path_factory, tiny_model):
    from rlhf.train.modeling import random_model

    return random_model("tiny", tmp_path_factory.mktemp("rm") / "rm", seed=1, num_labels=1)


def args(policy, rm, prompts, *extra) -> list[str]:
    return ["--policy", str(policy), "--reward-model", str(rm), "--prompts", prompts, "--updates", "2", "--batch-size", "4",
            "--num-minibatches", "2", "--ppo-epochs", "1", "--max-new-tokens", "6", "--eval-batch-size", "3",
            "--report-to", "none", "--threads", "1", *extra]


def test_stage_registers_ppo_v1(workspace, prompts_ref, tiny_model, tiny_rm, capsys):
    from rlhf.data.registry import get_model_version
    from rlhf.data.store import session_scope
    from stages import ppo as stage

    result = stage.main(args(tiny_model, tiny_rm, prompts_ref, "--value-model", "policy_head", "--lora-layers", "1"))
    out = capsys.readouterr().out
    assert result["model"] == "ppo@v1"
    for side in ("sft", "ppo"):
        assert set(result[side]) == {"reward", "rubric", "kl", "length", "eos"}
    assert result["sft"]["kl"] == 0.0
    assert "win rate PPO vs SFT" in out and out.strip().splitlines()[-1].startswith("RESULT ")
    assert json.loads(out.strip().splitlines()[-1][len("RESULT "):])["ppo"]["model"] == "ppo@v1"
    with session_scope() as s:
        mv = get_model_version(s, "ppo@v1")
        assert mv.stage == "ppo" and mv.dataset_versions == [prompts_ref] and mv.seed == 0
        assert mv.config["reward_model"] == str(tiny_rm) and mv.metrics["updates"] == 2
        path = mv.path
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(path)  # a plain model: the adapter is merged in
    assert not any("lora" in n for n, _ in merged.named_parameters())
    runs = sorted((workspace / "runs").glob("ppo-*"))
    assert (runs[-1] / "heldout_samples.json").exists() and (runs[-1] / "metrics.jsonl").exists()
    check_win_rate(result, runs[-1] / "heldout_samples.json", "ppo", len(HELDOUT))


def check_win_rate(result: dict, samples_file, side: str, n: int) -> None:
    """The RESULT's win rate is the share of the n held-out answers (heldout_samples.json) whose rubric score beats
    SFT's, ties counted half, and its interval the Wilson interval of that share (not just some number in [0, 1])."""
    from rlhf.stats import wilson_interval

    samples = json.loads(samples_file.read_text())
    assert len(samples) == n
    wins = sum(1.0 if s[f"rubric_{side}"] > s["rubric_sft"] else 0.5 if s[f"rubric_{side}"] == s["rubric_sft"] else 0.0
               for s in samples)
    assert result["win_rate"] == pytest.approx(wins / n, abs=1e-12), (result["win_rate"], samples)
    assert result["win_rate_ci"] == pytest.approx(list(wilson_interval(wins, n)), abs=1e-12)
    lo, hi = result["win_rate_ci"]
    assert lo <= result["win_rate"] <= hi and lo < hi


def test_stage_killed_mid_run_resumes_and_registers_once(workspace, prompts_ref, tiny_model, tiny_rm, tmp_path, capsys):
    """value_model rm (the default); SIGKILL (a real subprocess) once the first checkpoint is complete, resume: the
    remaining updates run, the history has each update once, and exactly one version is registered."""
    from stages import ppo as stage
    from tests.stage_runs import kill_mid_run, registered

    argv = args(tiny_model, tiny_rm, prompts_ref, "--checkpoint-every", "1", "--updates", "4")
    run = kill_mid_run(workspace, "ppo", argv, "checkpoints/update-*/state.json", tmp_path / "killed.log")
    done = int(json.loads(sorted((run / "checkpoints").glob("update-*/state.json"))[-1].read_text())["update"])
    assert 1 <= done < 4 and registered("ppo") == []

    again = stage.main(["--resume", str(run), "--report-to", "none"])
    assert f"resuming from update {done}" in capsys.readouterr().out
    assert again["model"] == "ppo@v1" and registered("ppo") == ["ppo@v1"]
    final = json.loads((run / "checkpoints" / "update-00004" / "state.json").read_text())
    assert [h["update"] for h in final["history"]] == [1, 2, 3, 4]
    assert sorted(p.name for p in (run / "checkpoints").iterdir() if not p.name.startswith(".")) == ["update-00004"]
    with pytest.raises(RlhfError, match="already finished and registered ppo@v1"):
        stage.main(["--resume", str(run), "--report-to", "none"])
    assert registered("ppo") == ["ppo@v1"]


def test_stage_clear_errors(workspace, prompts_ref, tiny_model, tiny_rm, tmp_path):
    from transformers import AutoTokenizer

    from stages import ppo as stage

    other = tmp_path / "other-rm"
    torch.manual_seed(0)
    from transformers import AutoModelForSequenceClassification

    AutoModelForSequenceClassification.from_pretrained(tiny_rm).save_pretrained(other)
    tok = AutoTokenizer.from_pretrained(tiny_rm)
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    tok.save_pretrained(other)
    with pytest.raises(RlhfError, match="tokenizer mismatch.*chat templates differ"):
        stage.main(args(tiny_model, other, prompts_ref))
    with pytest.raises(RlhfError, match="unknown config key"):
        stage.main(args(tiny_model, tiny_rm, prompts_ref, "--config", str(write_yaml(tmp_path / "bad.yaml"))))
    with pytest.raises(RlhfError, match="no checkpoint"):
        stage.main(["--resume", str(tmp_path)])


def write_yaml(path):
    path.write_text("policy: x\nbatch_sise: 8\n")
    return path
