"""Pieces every training stage shares: devices, tracking, trainer arguments, samples, saving, run folders."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from rlhf import paths
from rlhf.train.modeling import use_bf16

TRACKING_CHOICES = ("trackio", "tensorboard", "wandb", "mlflow", "none")
PROJECT = "rlhf"


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def new_run_dir(stage: str, seed: int) -> Path:
    """RLHF_HOME/runs/<stage>-<utc time>-s<seed>/: checkpoints, samples, logs of one run."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
    run = paths.runs_dir() / f"{stage}-{stamp}-s{seed}"
    run.mkdir(parents=True)
    return run


def setup_tracking(report_to: str) -> list[str]:
    """trackio (local SQLite under RLHF_HOME/trackio, Gradio dashboard) by default; others by flag."""
    if report_to == "none":
        return []
    if report_to == "trackio":
        os.environ.setdefault("TRACKIO_DIR", str(paths.home() / "trackio"))  # read when trackio is imported
    if report_to == "tensorboard":
        os.environ.setdefault("TENSORBOARD_LOGGING_DIR", str(paths.home() / "tensorboard"))
    return [report_to]


def trainer_args(cfg, run_dir: Path) -> dict:
    """The TrainingArguments fields common to our trl configs, resolved for this machine."""
    on_gpu = device() == "cuda"
    return dict(
        output_dir=str(run_dir / "trainer"),
        seed=cfg.seed,
        data_seed=cfg.seed,
        num_train_epochs=cfg.epochs,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.lr,
        lr_scheduler_type="cosine",
        warmup_steps=cfg.warmup_steps,
        weight_decay=0.0,
        max_length=cfg.max_length,
        logging_steps=cfg.logging_steps,
        eval_strategy="no",  # we evaluate before and after ourselves
        save_strategy="no",  # the stage saves the final model into the registry
        report_to=setup_tracking(cfg.report_to),
        project=PROJECT,
        run_name=run_dir.name,
        bf16=use_bf16(cfg.precision, cfg.mode),  # autocast; on CPU only where bf16 is native (trl defaults to True)
        use_cpu=not on_gpu,
        activation_checkpointing=cfg.activation_checkpointing,
        gradient_checkpointing=cfg.activation_checkpointing,
        optim="adamw_torch_fused" if on_gpu else "adamw_torch",
        dataloader_num_workers=0,
        disable_tqdm=False,
    )


def write_json(path: Path, obj) -> None:
    """Write JSON atomically (temp file + rename)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, ensure_ascii=False, default=str))
    os.replace(tmp, path)


def save_model(model, tokenizer, out_dir: Path, merge: bool = True) -> Path:
    """Save a trained model: LoRA merged into full weights (or kept as an adapter), written atomically."""
    import shutil
    import uuid

    out_dir = Path(out_dir)
    tmp = out_dir.parent / f".tmp-{out_dir.name}-{uuid.uuid4().hex[:8]}"
    try:
        net = model
        if hasattr(net, "peft_config") and merge:
            net = net.merge_and_unload()
        net.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.rename(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def generate_samples(model, tokenizer, prompts: list[list[dict]], max_new_tokens: int = 48) -> list[str]:
    """Greedy answers to chat prompts (left-padded batch), for before/after tables."""
    import torch

    tokenizer.padding_side = "left"
    texts = [tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in prompts]
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                             eos_token_id=tokenizer.eos_token_id)
    model.train(was_training)
    return [tokenizer.decode(o[enc["input_ids"].shape[1]:], skip_special_tokens=True).strip() for o in out]


def count_params(model) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total


def plot_history(log_history: list[dict], path: Path, keys: tuple[str, ...] = ("loss",), title: str = "") -> Path | None:
    """A PNG of logged metrics against the step (the Trainer's log_history); None when nothing was logged."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {k: [(h["step"], h[k]) for h in log_history if k in h and "step" in h] for k in keys}
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for k, pts in series.items():
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, label=k)
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
