"""Model cards (`rlhf models show`), plain Hugging Face exports (`rlhf models export`), PPO curves."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import run_cli
from rlhf.data import registry
from rlhf.data.store import session_scope
from rlhf.train.cards import write_card
from rlhf.train.plots import PPO_PANELS, ppo_curves

METRICS = {"eval_loss_before": 10.85, "eval_loss_after": 10.32, "train_rows": 24, "sft": {"reward": -0.25, "kl": 0.0}}


def register(workspace: Path, src: Path, name: str = "sft", stage: str = "sft", card: bool = False, plots=()):
    """`src` copied into the workspace as the next version of `name` and registered (with a card when `card`)."""
    with session_scope() as s:
        version = registry.next_version(s, name)
        folder = workspace / "models" / name / f"v{version}"
        shutil.copytree(src, folder)
        mv = registry.register_model(s, name=name, stage=stage, base="smollm2-135m-instruct", path=str(folder),
                                     dataset_versions=["sft@v3"], config={"mode": "lora", "lr": 0.01}, metrics=METRICS,
                                     seed=7, version=version)
        if card:
            write_card(folder, mv, plots)
        return mv.ref, folder


def metrics_jsonl(path: Path, updates=3) -> Path:
    rows = [{"update": u, "objective/reward": 0.1 * u, "objective/kl": 0.5 * u, "val/mean_response_length": 20 - u,
             "val/eos_fraction": 0.9, "loss/value": 1.0 / u, "time/update": 1.0} for u in range(1, updates + 1)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"update": 4, "objective/rew')  # a kill mid-line
    return path


def logits(model_dir: Path, cls_name: str = "AutoModelForCausalLM"):
    import torch
    import transformers

    net = getattr(transformers, cls_name).from_pretrained(model_dir)
    with torch.no_grad():
        return net(torch.tensor([[1, 5, 9, 2]])).logits


def test_ppo_curves_png(tmp_path):
    import matplotlib.image

    out = ppo_curves(metrics_jsonl(tmp_path / "metrics.jsonl"), tmp_path / "ppo_curves.png")
    assert out == tmp_path / "ppo_curves.png"
    h, w, _ = matplotlib.image.imread(out).shape
    assert w > 2 * h  # one panel per metric, side by side
    assert len(PPO_PANELS) == 5 and {k for k, _ in PPO_PANELS} == {"objective/reward", "objective/kl", "val/mean_response_length",
                                                                      "val/eos_fraction", "loss/value"}
    (tmp_path / "empty.jsonl").write_text("")
    assert ppo_curves(tmp_path / "empty.jsonl", tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()
    assert ppo_curves(tmp_path / "missing.jsonl", tmp_path / "none.png") is None


def test_card_written_at_registration_and_shown(workspace, tmp_path, tiny_model):
    png = ppo_curves(metrics_jsonl(tmp_path / "metrics.jsonl"), tmp_path / "ppo_curves.png")
    ref, folder = register(workspace, tiny_model, card=True, plots=[png])
    card = (folder / "README.md").read_text()
    assert (folder / "ppo_curves.png").is_file() and "![ppo_curves](ppo_curves.png)" in card
    for expected in ("# sft@v1", "| base | `smollm2-135m-instruct` |", "| datasets | `sft@v3` |", "| seed | 7 |",
                     "| code version |", "| eval_loss_after | 10.32 |", "| sft.reward | -0.25 |", '"lr": 0.01', "library_name: transformers",
                     "AutoModelForCausalLM.from_pretrained"):
        assert expected in card, expected
    r = run_cli("models", "show", "sft@latest")
    assert r.returncode == 0 and r.stdout.strip() == card.strip() and "Warning" not in r.stderr, r.stderr


def test_versions_registered_before_cards_get_one_built_from_the_row(workspace, tiny_model, tmp_path):
    from rlhf.train.modeling import random_model

    ref, folder = register(workspace, random_model("tiny", tmp_path / "rm", num_labels=1), name="rm", stage="rm")
    r = run_cli("models", "show", ref)
    assert r.returncode == 0, r.stderr
    assert "# rm@v1" in r.stdout and "reward model" in r.stdout and "| eval_loss_after | 10.32 |" in r.stdout
    assert "AutoModelForSequenceClassification" in r.stdout
    assert not (folder / "README.md").exists()  # a registered folder is not rewritten by showing it
    r = run_cli("models", "show", "rm@v9")
    assert r.returncode == 2 and r.stderr.strip() == "error: unknown model version rm@v9; known: rm@v1"


def test_models_export_full_weights_and_reward_model(workspace, tiny_model, tmp_path):
    from rlhf.train.modeling import random_model

    ref, folder = register(workspace, tiny_model)
    r = run_cli("models", "export", ref, str(tmp_path / "out"))
    assert r.returncode == 0 and r.stdout.strip() == f"sft@v1 -> {tmp_path / 'out'}", r.stderr
    assert (tmp_path / "out" / "README.md").read_text().startswith("---") and (tmp_path / "out" / "tokenizer.json").exists()
    assert logits(tmp_path / "out").equal(logits(folder))

    rm_ref, rm_folder = register(workspace, random_model("tiny", tmp_path / "rm", num_labels=1), name="rm", stage="rm")
    assert run_cli("models", "export", rm_ref, str(tmp_path / "rm-out")).returncode == 0
    out = logits(tmp_path / "rm-out", "AutoModelForSequenceClassification")
    assert out.shape == (1, 1) and out.equal(logits(rm_folder, "AutoModelForSequenceClassification"))

    r = run_cli("models", "export", ref, str(tmp_path / "out"))
    assert r.returncode == 2 and "already exists: export to a new folder" in r.stderr


@pytest.fixture
def adapter_version(workspace, tiny_model, tmp_path):
    """A registered LoRA adapter (what a qlora run saves) with non-zero weights, and its logits as peft computes them."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlhf.train.modeling import add_lora

    torch.manual_seed(0)
    net = add_lora(AutoModelForCausalLM.from_pretrained(tiny_model), r=4, alpha=8)
    for name, p in net.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.5)
    with torch.no_grad():
        expected = net(torch.tensor([[1, 5, 9, 2]])).logits
    net.save_pretrained(tmp_path / "adapter")
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(tmp_path / "adapter")
    ref, folder = register(workspace, tmp_path / "adapter", name="sftq")
    return ref, folder, expected


def test_models_export_adapter_merged_or_kept(adapter_version, tmp_path):
    ref, folder, expected = adapter_version
    assert run_cli("models", "export", ref, str(tmp_path / "merged")).returncode == 0
    merged = tmp_path / "merged"
    assert (merged / "config.json").exists() and not (merged / "adapter_config.json").exists()
    assert "full weights" in (merged / "README.md").read_text() and "library_name: transformers" in (merged / "README.md").read_text()
    assert logits(merged).allclose(expected, atol=1e-4)  # plain transformers, no peft: the adapter is in the weights

    r = run_cli("models", "export", ref, str(tmp_path / "kept"), "--adapter")
    assert r.returncode == 0, r.stderr
    kept = tmp_path / "kept"
    assert (kept / "adapter_config.json").exists() and not (kept / "config.json").exists()
    assert "library_name: peft" in (kept / "README.md").read_text()
    assert logits(kept).allclose(expected, atol=1e-4)  # AutoModelForCausalLM loads base + adapter (peft installed)
