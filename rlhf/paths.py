"""Where a user's workspace lives (`RLHF_HOME`, default ./workspace) and which code is running."""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def home() -> Path:
    """The workspace root: database, registry, model cache, runs. Created on first use."""
    path = Path(os.environ.get("RLHF_HOME", "workspace")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def registry_dir() -> Path:
    return home() / "registry"


def models_dir() -> Path:
    return home() / "models"


def runs_dir() -> Path:
    return home() / "runs"


@functools.cache
def code_version() -> str:
    """The git commit of the running code (`+dirty` when the tree has changes), else the package version."""
    from rlhf import __version__

    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        if not sha:
            return __version__
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        return f"{sha}+dirty" if dirty else sha
    except (OSError, subprocess.SubprocessError):
        return __version__
