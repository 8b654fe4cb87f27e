"""Checkpoints and `--resume RUN_DIR` for the stages trained by a trl Trainer (SFT, RM); PPO has its own
(`rlhf.train.ppo.checkpoint`).

The Trainer writes `RUN_DIR/trainer/checkpoint-N/` every `checkpoint_every` optimizer steps: weights (the
LoRA adapter, or the model), optimizer, scheduler, every process's RNG state and the trainer state, which
`trainer.train(resume_from_checkpoint=...)` restores (data order included: it skips the batches already
seen), loading each file with `torch.load(..., weights_only=True)`. It writes that folder in place, file by
file, so a SIGKILL during a save leaves a folder with some files missing or cut short. Hence the rule here:
a checkpoint counts only once `CheckpointCallback` has written `rlhf-complete.json` into it, after every
process has finished its files (a barrier) and with the run's pinned config. `latest` takes the newest
complete one; a newer incomplete one is moved aside before training continues, so nothing half-written is
ever read or mixed with new files. Older checkpoints are removed only after a newer one is complete.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from transformers import TrainerCallback

from rlhf import fs
from rlhf.config import from_dict, to_dict
from rlhf.errors import NotFoundError
from rlhf.train import distributed

MARKER = "rlhf-complete.json"
PREFIX = "checkpoint-"


def trainer_dir(run_dir: Path) -> Path:
    """Where the Trainer of a run writes its checkpoints (`stage.trainer_args` output_dir)."""
    return Path(run_dir) / "trainer"


def step_of(path: Path) -> int:
    return int(path.name[len(PREFIX):])


def checkpoints(run_dir: Path) -> list[Path]:
    """Every `checkpoint-N` folder of a run, complete or not, oldest first."""
    root = trainer_dir(run_dir)
    found = [p for p in root.glob(f"{PREFIX}*") if p.is_dir() and p.name[len(PREFIX):].isdigit()] if root.is_dir() else []
    return sorted(found, key=step_of)


def latest(run_dir: Path) -> Path:
    """The newest complete checkpoint of a run folder."""
    complete = [p for p in checkpoints(run_dir) if (p / MARKER).is_file()]
    if not complete:
        raise NotFoundError(f"--resume {run_dir}: no complete checkpoint in {trainer_dir(run_dir)} (a run writes one "
                            "every checkpoint_every steps; an interrupted save does not count)")
    return complete[-1]


def resumed(cfg):
    """(the stored config of the run to resume, its run folder): a resumed run continues with exactly its own
    settings (those of its newest complete checkpoint); (cfg, None) for a new run."""
    if not getattr(cfg, "resume", ""):
        return cfg, None
    run_dir = Path(cfg.resume).expanduser().resolve()
    stored = json.loads((latest(run_dir) / MARKER).read_text())["config"]
    stored["resume"] = str(run_dir)
    return from_dict(type(cfg), stored, where=f"{run_dir} checkpoint config"), run_dir


def checkpoint_to_resume(run) -> str | None:
    """For `trainer.train(resume_from_checkpoint=...)`: the newest complete checkpoint of a resumed run (checkpoints
    newer than it, cut short by a kill, are moved aside first, on the main process), or None for a new run."""
    if not getattr(run.cfg, "resume", ""):
        return None
    path = latest(run.dir)

    def set_aside_incomplete() -> None:
        for p in checkpoints(run.dir):
            if step_of(p) > step_of(path):
                print(f"resume: {p.name} was cut short (no {MARKER}); moved aside to {fs.move_aside(p).name}", flush=True)

    distributed.main_only(set_aside_incomplete)
    distributed.say(f"resuming from {path.name}")
    return str(path)


class CheckpointCallback(TrainerCallback):
    """Marks each checkpoint complete once every process has written it, then removes the older ones. Also logs
    at every checkpoint and at the last step: a resumed run then continues from a logged step, and the logged
    losses cover every step once (`train_loss`), as in a run that was never stopped."""

    def __init__(self, run, keep: int = 1):
        self.run, self.keep = run, keep

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_save or state.global_step >= state.max_steps:
            control.should_log = True
        return control

    def on_save(self, args, state, control, **kwargs):
        distributed.barrier()  # every process's files (its RNG state) are written
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"{PREFIX}{state.global_step}"
            fs.write_json(folder / MARKER, {"stage": self.run.stage, "step": state.global_step,
                                            "config": to_dict(self.run.cfg)})
            kept = [p for p in checkpoints(self.run.dir) if (p / MARKER).is_file()][-self.keep:]
            for old in checkpoints(self.run.dir):
                if step_of(old) < step_of(kept[0]):
                    shutil.rmtree(old, ignore_errors=True)
        distributed.barrier()
        return control


def train_loss(log_history: list[dict]) -> float | None:
    """The mean training loss over every optimizer step of the run, from the Trainer's log (restored on resume):
    each logged loss is the mean over the steps since the previous log.

    >>> train_loss([{"loss": 2.0, "step": 2}, {"loss": 1.0, "step": 3}, {"eval_loss": 9.0, "step": 3}])
    1.6666666666666667
    """
    logged = [(h["step"], h["loss"]) for h in log_history if "loss" in h and "step" in h]
    if not logged:
        return None
    total, last = 0.0, 0
    for step, loss in logged:
        total += loss * (step - last)
        last = step
    return total / last
