"""Where a user's workspace lives (`RLHF_HOME`, default ./workspace) and which code is running.

The workspace holds the store (password hashes, every annotation) and the models: it is created
readable by its owner only (0o700), and so is the SQLite file (0o600, `private_file`; SQLite gives its
-wal and -shm files the database file's mode).
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def home() -> Path:
    """The workspace root: database, registry, model cache, runs. Created on first use, owner-only (0o700)."""
    path = Path(os.environ.get("RLHF_HOME", "workspace")).resolve()
    if not path.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:  # another process made it first
            pass
        else:
            os.chmod(path, 0o700)  # whatever the umask
    return path


def private_file(path: Path) -> Path:
    """`path`, created empty and owner-only (0o600) when it does not exist yet; an existing file is left as it is."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
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
