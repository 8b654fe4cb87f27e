"""The stage skeleton: what every training stage (stages/sft.py, rm.py, ppo.py) does around its own steps.

    run = stage.start("sft", parse_args(SFTStageConfig, argv), PINS)   # pin refs, print config, seed, run folder
    ...                                                                 # the stage's own numbered steps
    ref, out = stage.save_and_register(run, model, tokenizer, base=..., datasets=[...], metrics=...)
    return stage.finish(run, {"model": ref, ...})                       # the `RESULT {json}` line

A run pins every model and dataset reference of its config to the exact `NAME@vN` it means at start,
so the printed config, the checkpoints, result.json and the registry row say exactly what was used.
Saving writes the model folder atomically (`rlhf.fs.atomic_dir`) and registers it in the same
transaction. Also here: the TrainingArguments the trl-trained stages share, tracking, plots.

Rank-safe under `accelerate launch` (`rlhf.train.distributed`): pinning, the run folder, saving,
registering, plots and the RESULT line happen once, on the main process; the other processes wait for
its values. One run is one run folder, one registered version, whatever the number of processes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlhf import fs, paths
from rlhf.config import describe, field, seed_everything, to_dict
from rlhf.data import registry
from rlhf.errors import RlhfError
from rlhf.train import cards, distributed
from rlhf.train.modeling import PRECISIONS, device, use_bf16

TRACKING_CHOICES = ("trackio", "tensorboard", "wandb", "mlflow", "none")
PROJECT = "rlhf"


@dataclass
class TrainerFields:
    """Config fields of the stages trained by a trl Trainer (SFT, RM) that read the same in both;
    `trainer_args` turns them, with the stage's own epochs, batch size and learning rate, into TrainingArguments."""

    # Model
    lora_r: int = field(16, "LoRA rank (lora, qlora)")
    lora_alpha: int = field(32, "LoRA alpha (scale = alpha / r)")
    # Optimization
    grad_accum: int = field(1, "steps accumulated per optimizer update")
    activation_checkpointing: bool = field(False, "recompute activations to save memory (slower)")
    precision: str = field("auto", "bf16 autocast: auto (GPU, or a CPU with native bf16; never qlora on CPU) | bf16 | fp32",
                           PRECISIONS)
    # Output
    logging_steps: int = field(5, "log training metrics every N optimizer steps")
    report_to: str = field("trackio", "experiment tracking backend", TRACKING_CHOICES)
    checkpoint_every: int = field(50, "save a checkpoint every N optimizer steps (0 = none); --resume continues from it")
    resume: str = field("", "a run folder to continue from its newest complete checkpoint (its stored config is used)")


@dataclass(frozen=True)
class Run:
    """One run of a stage: its pinned config, its folder under RLHF_HOME/runs and when it started."""

    stage: str  # "sft", "rm", "ppo": the registry's stage column and the RESULT line's key
    cfg: Any
    dir: Path
    started: float


def new_run_dir(stage: str, seed: int) -> Path:
    """RLHF_HOME/runs/<stage>-<utc time>-s<seed>/: checkpoints, samples, logs of one run."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
    run = paths.runs_dir() / f"{stage}-{stamp}-s{seed}"
    run.mkdir(parents=True)
    return run


def check_unfinished(run_dir: Path) -> None:
    """A run folder to resume must not hold a finished run: resuming it would register a second version."""
    done = Path(run_dir) / "result.json"
    if done.exists():
        ref = json.loads(done.read_text()).get("model", "?")
        raise RlhfError(f"--resume {run_dir}: this run already finished and registered {ref}; nothing to resume "
                        "(start a new run instead)")


def pin(cfg, pins: dict[str, str | None]):
    """`cfg` with each field of `pins` pinned: a model reference (kind None) by `registry.pin_model`, a dataset
    reference to the `NAME@vN` of that kind it names now (an unknown one, or one of another kind, is an error)."""
    from rlhf.data.store import session_scope

    with session_scope() as s:
        values = {name: registry.pin_model(s, getattr(cfg, name)) if kind is None
                  else registry.get_version(s, getattr(cfg, name), kind=kind).ref for name, kind in pins.items()}
    return dataclasses.replace(cfg, **values)


def start(stage: str, cfg, pins: dict[str, str | None], run_dir: Path | None = None) -> Run:
    """Check the model name, pin the config's references, check it (`cfg.check()` where it has one), print it, seed
    python, numpy and torch, and make the run folder. A resumed run passes its own folder (its config is pinned
    already; a finished run is refused). Under a launch the main process pins and makes the folder."""
    from rlhf.quiet import quiet

    quiet()  # library notices a user cannot act on stay out of the run's output (rlhf/quiet.py says which and why)
    started = time.time()
    distributed.check_engine()
    registry.check_registry_name(cfg.name, "--name: model")  # NAME@vN parses, models/NAME/vN is a folder of its own
    if run_dir is None:
        cfg = distributed.main_only(pin, cfg, pins)
    else:
        check_unfinished(run_dir)
    if hasattr(cfg, "check"):
        cfg.check()
    if distributed.is_main():
        print(f"{stage.upper()} config:\n{describe(cfg)}", flush=True)
    seed_everything(cfg.seed)
    return Run(stage, cfg, run_dir or distributed.main_only(new_run_dir, stage, cfg.seed), started)


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
        eval_strategy="no",  # we evaluate before and after ourselves, on the main process
        save_strategy="steps" if cfg.checkpoint_every else "no",  # checkpoints to resume from (rlhf.train.resume)
        save_steps=cfg.checkpoint_every or 500,
        save_total_limit=None,  # resume.CheckpointCallback removes old ones once a newer one is complete
        # several processes: per-process batches in turn, the last global batch split, never a row repeated
        # (accelerate's default repeats rows to even it out); distributed.check_even_split refuses what would hang
        accelerator_config={"even_batches": False},
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


def count_params(model) -> tuple[int, int]:
    """(trainable, total) parameter counts of `model`."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total


def params(model) -> str:
    """`N trainable of M parameters`, for the stages' model line."""
    trainable, total = count_params(model)
    return f"{trainable:,} trainable of {total:,} parameters"


def save_model(model, tokenizer, out_dir: Path, merge: bool = True) -> Path:
    """Save a trained model: LoRA merged into full weights (or kept as an adapter), written atomically;
    a folder already at `out_dir` is moved aside, never deleted (`rlhf.fs.atomic_dir`)."""

    def write(tmp: Path) -> None:
        net = model.merge_and_unload() if hasattr(model, "peft_config") and merge else model
        net.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return fs.atomic_dir(Path(out_dir), write)


def save_and_register(run: Run, model, tokenizer, *, base: str, datasets: list[str], metrics: dict,
                      config: dict | None = None) -> tuple[str, Path]:
    """(NAME@vN, model folder): the model saved (merged unless qlora) as the next version of `cfg.name` and
    registered with its base, data, config and metrics in one transaction; result.json in the run folder.
    On the main process only; every process gets the answer."""
    from rlhf.data.store import session_scope

    cfg = run.cfg
    config = to_dict(cfg) if config is None else config

    def save_register() -> tuple[str, Path]:
        with session_scope() as s:
            version = registry.next_version(s, cfg.name)
            out = save_model(model, tokenizer, paths.models_dir() / cfg.name / f"v{version}", merge=cfg.mode != "qlora")
            mv = registry.register_model(s, name=cfg.name, stage=run.stage, base=base, path=str(out),
                                         dataset_versions=datasets, config=config, metrics=metrics, seed=cfg.seed,
                                         version=version)
            ref = mv.ref
        # the model card and the run's plots beside the weights (documentation: not part of the folder's hash)
        cards.write_card(out, mv, sorted(run.dir.glob("*.png")))
        fs.write_json(run.dir / "result.json", {"model": ref, "config": config, "metrics": metrics})
        return ref, out

    return distributed.main_only(save_register)


def finish(run: Run, result: dict) -> dict:
    """`result` with the run's wall time, printed (by the main process) as the `RESULT {json}` line the demo reads."""
    seconds = distributed.main_only(lambda: round(time.time() - run.started, 1))  # the main process's clock
    result = {**result, "seconds": seconds}
    if distributed.is_main():
        print("RESULT " + json.dumps({run.stage: result}), flush=True)
    return result


def plot_history(log_history: list[dict], path: Path, keys: tuple[str, ...] = ("loss",), title: str = "") -> Path | None:
    """A PNG of logged metrics against the step (the Trainer's log_history); None when nothing was logged (or
    on a process other than the main one)."""
    if not distributed.is_main():
        return None
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
