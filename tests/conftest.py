"""Shared fixtures: an isolated workspace per test, the built-in tokenizer converted once, tiny models.

Tests never touch ./workspace: each one gets its own RLHF_HOME under pytest's tmp_path. The
built-in model is converted from its GGUF once per test session and linked into each workspace.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SEED = REPO / "data" / "seed"


@pytest.fixture(scope="session")
def builtin_cache(tmp_path_factory) -> Path:
    """RLHF_HOME/models of a session workspace holding the converted built-in model."""
    home = tmp_path_factory.mktemp("builtin-home")
    old = os.environ.get("RLHF_HOME")
    os.environ["RLHF_HOME"] = str(home)
    try:
        from rlhf.train import modeling

        path = modeling.builtin_path()
    finally:
        if old is None:
            os.environ.pop("RLHF_HOME", None)
        else:
            os.environ["RLHF_HOME"] = old
    return path


@pytest.fixture
def workspace(tmp_path, monkeypatch, builtin_cache) -> Path:
    """A fresh RLHF_HOME with its own SQLite store and the built-in model already converted."""
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    (home / "models" / builtin_cache.name).symlink_to(builtin_cache)
    monkeypatch.setenv("RLHF_HOME", str(home))
    monkeypatch.delenv("RLHF_DATABASE_URL", raising=False)
    return home


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, builtin_cache) -> Path:
    """A random-init 2-layer SmolLM2-shaped causal LM with the built-in tokenizer (3M params)."""
    os.environ.setdefault("RLHF_HOME", str(builtin_cache.parent.parent))
    from rlhf.train.modeling import random_model

    return random_model("tiny", tmp_path_factory.mktemp("tiny") / "model", seed=0)


def write_jsonl(path: Path, rows: list) -> Path:
    """Write rows (dicts, or raw strings written as-is) one per line."""
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return path


def run_cli(*args: str, env: dict | None = None, input: str | None = None) -> subprocess.CompletedProcess:
    """`rlhf ARGS` in a subprocess (the same RLHF_HOME as the test), captured."""
    return subprocess.run([sys.executable, "-m", "rlhf.cli", *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, **(env or {})}, input=input, timeout=600)
