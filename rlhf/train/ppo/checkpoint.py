"""PPO checkpoints: everything needed to continue a run exactly, written atomically.

A checkpoint is a folder `RUN_DIR/checkpoints/update-NNNNN/` holding the trainable weights (LoRA
adapters, value head or value adapter), the optimizer and scheduler states, every RNG state, the
KL controller, the reward statistics, the update index and the run's config. It is written to a
temporary folder and renamed into place (`rlhf.fs.atomic_dir`), so a crash never leaves a half
checkpoint; older ones are removed only after the new one exists.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import torch

from rlhf import fs
from rlhf.errors import IntegrityError, NotFoundError

FILES = ("trainable.pt", "optimizer.pt", "scheduler.pt", "rng.pt", "state.json")


def checkpoints_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def rng_state() -> dict:
    """Every RNG state as tensors, strings and numbers only, so it loads with `torch.load(..., weights_only=True)`
    (numpy's state is a tuple holding an ndarray, which that loader refuses: its key array travels as a tensor)."""
    import numpy as np

    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    version, internal, gauss = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
             "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    import numpy as np

    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"].tolist()), py["gauss"]))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(run_dir: Path, update: int, model, optimizer, scheduler, state: dict, keep: int = 1) -> Path:
    """Write checkpoint `update` (the number of finished updates) and keep the newest `keep` ones."""
    root = checkpoints_dir(run_dir)

    def write(tmp: Path) -> None:
        torch.save(trainable_state(model), tmp / "trainable.pt")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save(rng_state(), tmp / "rng.pt")
        (tmp / "state.json").write_text(json.dumps({**state, "update": update}, indent=1, default=str))

    final = fs.atomic_dir(root / f"update-{update:05d}", write)  # one already there is moved aside, not deleted
    older = sorted(p for p in root.glob("update-*") if p != final)
    for old in older[:max(0, len(older) - (keep - 1))]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest(run_dir: Path) -> Path:
    """The newest complete checkpoint of a run folder."""
    root = checkpoints_dir(run_dir)
    found = sorted(p for p in root.glob("update-*") if all((p / f).exists() for f in FILES)) if root.is_dir() else []
    if not found:
        raise NotFoundError(f"--resume {run_dir}: no checkpoint in {root} (a run writes one every checkpoint_every updates)")
    return found[-1]


def read_state(path: Path) -> dict:
    return json.loads((Path(path) / "state.json").read_text())


def load(path: Path, model, optimizer, scheduler) -> dict:
    """Restore weights, optimizer, scheduler and RNG states from checkpoint `path`; returns its state.json."""
    path = Path(path)
    weights = torch.load(path / "trainable.pt", map_location="cpu", weights_only=True)
    params = dict(model.named_parameters())
    expected = {n for n, p in params.items() if p.requires_grad}
    if set(weights) != expected:
        missing, extra = sorted(expected - set(weights))[:3], sorted(set(weights) - expected)[:3]
        raise IntegrityError(f"{path}: the checkpoint's weights do not fit this model (missing {missing}, unexpected {extra}): "
                             "resume with the same policy, reward model, value_model and LoRA settings")
    with torch.no_grad():
        for n, w in weights.items():
            params[n].copy_(w.to(params[n].device, params[n].dtype))
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", map_location="cpu", weights_only=True))
    try:
        rng = torch.load(path / "rng.pt", map_location="cpu", weights_only=True)  # no pickled code runs on resume
    except Exception as e:  # pickle.UnpicklingError: e.g. a checkpoint written before RNG states were stored as tensors
        raise IntegrityError(f"{path / 'rng.pt'}: cannot be loaded safely ({type(e).__name__}): the checkpoint is damaged "
                             "or older than this code; start a new run") from None
    set_rng_state(rng)
    return read_state(path)
