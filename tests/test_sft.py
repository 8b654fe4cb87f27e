"""SFT stage on a tiny random-init model: loss goes down, results are reproducible, bad input is clear."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from sqlalchemy import select

from conftest import REPO, write_jsonl
from rlhf.data import registry
from rlhf.errors import NotFoundError, RlhfError
from rlhf.data.store import session_scope
from rlhf.data.ingest import import_demonstrations, import_prompts
from rlhf.data.store.models import ModelVersion

TOPICS = ["apples", "rivers", "lists", "taxes", "bread", "trains", "stars", "loans"]


@pytest.fixture
def sft_data(workspace, tmp_path):
    return sft_snapshot(tmp_path)


def sft_snapshot(tmp_path) -> str:
    """32 prompts (8 held out) whose answers follow one template: learnable by a tiny model; the sft snapshot's ref."""
    prompts, demos = [], []
    for i in range(32):
        msgs = [{"role": "user", "content": f"Tell me about {TOPICS[i % 8]}, item {i}."}]
        prompts.append({"id": f"p{i}", "messages": msgs, "tags": ["t"] + (["heldout"] if i % 4 == 0 else [])})
        demos.append({"prompt_id": f"p{i}", "messages": msgs + [{"role": "assistant", "content": f"Here is a short fact about {TOPICS[i % 8]}."}]})
    with session_scope() as s:
        import_prompts(s, write_jsonl(tmp_path / "p.jsonl", prompts))
        import_demonstrations(s, write_jsonl(tmp_path / "d.jsonl", demos), approved_by="lead")
    with session_scope() as s:
        return registry.snapshot(s, "sft")[0].ref


def run_sft(model, *extra):
    from stages import sft

    return sft.main(["--model", str(model), "--report-to", "none", "--epochs", "3", "--lr", "1e-2", "--batch-size", "8",
                     "--samples", "1", "--sample-tokens", "4", "--max-length", "64", *extra])


# The bar, held at every seed of tests/test_seeds_slow.py (--seed 0-5). Measured there (2026-12-01): held-out loss
# 10.854 before, eval_loss_before - eval_loss_after min/median/max 0.890/0.927/0.965: a wide margin.
LOSS_DROP_BAR = 0.3


def check_sft_learned(result: dict) -> None:
    assert result["eval_loss_after"] < result["eval_loss_before"] - LOSS_DROP_BAR, result


def test_sft_lowers_heldout_loss_and_registers(sft_data, tiny_model):
    result = run_sft(tiny_model)
    check_sft_learned(result)
    assert result["train_rows"] == 24 and result["eval_rows"] == 8
    with session_scope() as s:
        mv = s.scalars(select(ModelVersion)).one()
        assert mv.ref == "sft@v1" and mv.dataset_versions == [sft_data] and mv.seed == 0
        assert mv.config["mode"] == "lora" and mv.metrics["eval_loss_after"] == result["eval_loss_after"]
        assert mv.code_version
    from rlhf.train import modeling

    merged = modeling.load_model("sft@v1")  # a merged, loadable full model
    assert not hasattr(merged, "peft_config")


def test_same_seed_same_numbers(sft_data, tiny_model):
    a = run_sft(tiny_model, "--epochs", "1")
    b = run_sft(tiny_model, "--epochs", "1")
    assert a["eval_loss_after"] == b["eval_loss_after"] and a["train_loss"] == b["train_loss"]
    c = run_sft(tiny_model, "--epochs", "1", "--seed", "1")
    assert c["train_loss"] != a["train_loss"]


def test_base_and_dataset_are_pinned(sft_data, tiny_model):
    """`--model sft@latest` is recorded as the version it meant (as PPO records its policy), the data likewise."""
    run_sft(tiny_model, "--epochs", "1")
    result = run_sft("sft@latest", "--epochs", "1", "--dataset", "sft@latest")
    assert result["model"] == "sft@v2" and result["dataset"] == sft_data
    with session_scope() as s:
        mv = registry.get_model_version(s, "sft@v2")
        assert mv.base == "sft@v1" and mv.config["model"] == "sft@v1" and mv.config["dataset"] == sft_data


@pytest.mark.parametrize("mode", ["full", "head"])
def test_other_modes_train(sft_data, tiny_model, mode):
    result = run_sft(tiny_model, "--mode", mode, "--epochs", "1")
    assert result["eval_loss_after"] < result["eval_loss_before"]


def test_head_mode_trains_only_the_head(tiny_model):
    from rlhf.train import modeling

    model = modeling.load_model(str(tiny_model))
    embed_before = model.model.embed_tokens.weight.detach().clone()
    modeling.freeze_all_but_head(model)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["lm_head.weight"]
    model.lm_head.weight.data += 1.0
    assert (model.model.embed_tokens.weight == embed_before).all()  # untied: the embeddings did not move


def test_qlora_mode_on_cpu(sft_data, tiny_model):
    """bitsandbytes is in the [dev] extra the tests install: missing, this test fails rather than skips."""
    result = run_sft(tiny_model, "--mode", "qlora", "--epochs", "1")
    assert result["eval_loss_after"] < result["eval_loss_before"]
    with session_scope() as s:
        mv = s.scalars(select(ModelVersion)).one()
    from pathlib import Path

    assert (Path(mv.path) / "adapter_config.json").exists()  # 4-bit bases are kept as adapters, not merged


def test_bad_model_and_mode_and_dataset(sft_data, tiny_model, tmp_path):
    with pytest.raises(NotFoundError, match="no such folder, registered version or built-in model"):
        run_sft(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotFoundError, match="not a model folder"):
        run_sft(tmp_path / "empty")
    with pytest.raises(RlhfError, match="unknown --mode 'bogus': expected one of lora, full, head, qlora"):
        run_sft(tiny_model, "--mode", "bogus")
    with pytest.raises(NotFoundError, match="unknown dataset version sft@v9"):
        run_sft(tiny_model, "--dataset", "sft@v9")
    with pytest.raises(NotFoundError, match="unknown model version sft@v3"):
        run_sft("sft@v3")
    for bad in ("../escape", "a/b", "x" * 65, "sft@v2", "a\x00b"):  # a model name is a registry name and a folder
        with pytest.raises(RlhfError, match="--name: model name .*: use 1-64 letters"):
            run_sft(tiny_model, "--name", bad)
    with session_scope() as s:
        assert s.scalars(select(ModelVersion)).all() == []  # refused at start, before any training or saving


def test_stage_cli_errors_are_one_line(sft_data, tmp_path):
    out = subprocess.run([sys.executable, "-m", "stages.sft", "--model", str(tmp_path / "missing"), "--report-to", "none"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("error: --model ")
    assert "Traceback" not in out.stderr
    cfg = tmp_path / "c.yaml"
    cfg.write_text("epochs: 1\nbogus_key: 3\n")
    out = subprocess.run([sys.executable, "-m", "stages.sft", "--config", str(cfg)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "unknown config key(s) bogus_key" in out.stderr
