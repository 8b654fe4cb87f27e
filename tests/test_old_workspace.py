"""A workspace made by an earlier version of the service opens and works after an upgrade.

The fixture (tests/fixtures/workspace_5bd5007, see its README) is a store, a registry and a model
folder written by the code of commit 5bd5007, before the library was split into data/train/review.
Alembic upgrades the schema from the revisions it carries; snapshots still verify; new work adds to it.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from conftest import run_cli, write_jsonl

FIXTURE = Path(__file__).parent / "fixtures" / "workspace_5bd5007"


@pytest.fixture
def old_home(workspace: Path) -> Path:
    """The fixture restored into this test's RLHF_HOME (absolute paths rewritten to it)."""
    sql = (FIXTURE / "rlhf.sql").read_text().replace("@@HOME@@", str(workspace))
    con = sqlite3.connect(workspace / "rlhf.db")
    con.executescript(sql)
    con.close()
    shutil.copytree(FIXTURE / "registry", workspace / "registry")
    shutil.copytree(FIXTURE / "models" / "sft", workspace / "models" / "sft")
    return workspace


def test_old_workspace_lists_verifies_and_snapshots(old_home: Path, tmp_path: Path):
    out = run_cli("registry", "list")
    assert out.returncode == 0, out.stderr
    for ref in ("prompts@v1", "sft@v1", "preferences@v1"):
        assert ref in out.stdout

    out = run_cli("models", "list")
    assert out.returncode == 0, out.stderr
    assert "sft@v1" in out.stdout and "base=smollm2-135m-instruct" in out.stdout

    out = run_cli("registry", "show", "preferences@v1")  # re-hashes the Arrow files written by the old code
    assert out.returncode == 0, out.stderr
    assert '"verified": true' in out.stdout

    out = run_cli("registry", "snapshot", "prompts")  # same content: the old version is found, not a new one
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "prompts@v1"

    new = write_jsonl(tmp_path / "more.jsonl", [{"id": "p4", "messages": [{"role": "user", "content": "Why is the sky blue?"}]}])
    assert run_cli("import", "prompts", str(new)).returncode == 0
    out = run_cli("registry", "snapshot", "prompts")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "prompts@v2"

    # re-importing the old rankings file adds nothing: the duplicate rule did not change under the data
    again = run_cli("import", "rankings", str(FIXTURE / "source" / "rankings.jsonl"))
    assert again.returncode == 0, again.stderr
    assert "0 rankings added, 2 exact duplicates skipped" in again.stdout
    again = run_cli("import", "demonstrations", str(FIXTURE / "source" / "demos.jsonl"))
    assert "0 demonstrations added, 2 exact duplicates skipped" in again.stdout
