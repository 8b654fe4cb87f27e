"""What the many-process and resume tests share: a workspace for a whole test module, finding a run's folder and
its per-step losses, and a stage run killed with SIGKILL in the middle (a real subprocess)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO


def module_home(tmp_path_factory, builtin_cache, name: str):
    """A fresh RLHF_HOME (store, registry, runs) for a whole test module, with the built-in model linked in."""
    home = tmp_path_factory.mktemp(name) / "home"
    (home / "models").mkdir(parents=True)
    (home / "models" / builtin_cache.name).symlink_to(builtin_cache)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RLHF_HOME", str(home))
        mp.delenv("RLHF_DATABASE_URL", raising=False)
        yield home


def run_dirs(home: Path, stage: str) -> set[Path]:
    return set((home / "runs").glob(f"{stage}-*")) if (home / "runs").is_dir() else set()


def run_dir_of(home: Path, stage: str, ref: str) -> Path:
    """The one run folder whose result.json registered `ref`."""
    found = [d for d in run_dirs(home, stage) if (d / "result.json").exists()
             and json.loads((d / "result.json").read_text())["model"] == ref]
    assert len(found) == 1, (ref, found)
    return found[0]


def step_losses(run_dir: Path) -> list[tuple[int, float, float | None]]:
    """(step, loss, tokens seen so far) of every logged step, from the run's last Trainer checkpoint."""
    from rlhf.train import resume

    state = json.loads((resume.latest(run_dir) / "trainer_state.json").read_text())
    return [(h["step"], h["loss"], h.get("num_tokens")) for h in state["log_history"] if "loss" in h]


def registered(name: str) -> list[str]:
    from sqlalchemy import select

    from rlhf.data.store import session_scope
    from rlhf.data.store.models import ModelVersion

    with session_scope() as s:
        return sorted(mv.ref for mv in s.scalars(select(ModelVersion).where(ModelVersion.name == name)))


def kill_mid_run(home: Path, stage: str, argv: list[str], ready: str, log: Path, timeout: float = 300.0) -> Path:
    """Start `python -m stages.<stage> argv` and SIGKILL it as soon as its new run folder holds a file matching the
    glob `ready` (a complete checkpoint); returns the run folder. Fails if the run ended first."""
    before = run_dirs(home, stage)
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", f"stages.{stage}", *argv], cwd=REPO, env=dict(os.environ),
                                stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    run = None
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            new = run_dirs(home, stage) - before
            run = next(iter(new), None)
            if run is not None and any(run.glob(ready)):
                break
            time.sleep(0.01)
        assert proc.poll() is None, f"the run ended before it could be killed:\n{log.read_text()[-3000:]}"
        assert run is not None and any(run.glob(ready)), f"no {ready} within {timeout} s:\n{log.read_text()[-3000:]}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()  # SIGKILL as well
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (run / "result.json").exists()  # killed in the middle: nothing registered yet
    return run
