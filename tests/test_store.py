"""The store: migrations, WAL mode, transactions roll back whole, the URL forms a team writes, PostgreSQL migrations."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest
from sqlalchemy import select, text

from conftest import REPO, fresh_postgres, need_postgres, run_cli
from rlhf.data.store import db as store_db
from rlhf.data.store import session_scope
from rlhf.data.store.models import Prompt, User


@pytest.fixture
def workspace(workspace, database):
    """conftest's workspace, on SQLite and on a fresh PostgreSQL database (the `database` parameter)."""
    return workspace


def heads() -> set[str]:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(store_db.MIGRATIONS))
    return set(ScriptDirectory.from_config(cfg).get_heads())


def test_schema_from_migrations(workspace, database):
    with session_scope() as s:
        s.add(User(name="ann", role="annotator"))
    with session_scope() as s:
        assert set(s.scalars(text("select version_num from alembic_version"))) == heads()  # every branch applied
    if database == "sqlite":
        db = sqlite3.connect(workspace / "rlhf.db")
        assert db.execute("pragma journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in db.execute("select name from sqlite_master where type='table'")}
        assert {"users", "prompts", "responses", "demonstrations", "rankings", "reviews", "dataset_versions",
                "model_versions"} <= tables
    else:
        engine = store_db.engine_for(store_db.database_url())
        assert engine.dialect.driver == "psycopg" and engine.pool._pre_ping  # a server: dead connections are replaced
        assert not (workspace / "rlhf.db").exists()


def test_transaction_rolls_back_whole(workspace):
    with pytest.raises(RuntimeError):
        with session_scope() as s:
            s.add(Prompt(external_id="a", messages=[], tags=[], content_hash="h1"))
            s.flush()
            raise RuntimeError("boom")
    with session_scope() as s:
        assert s.scalars(select(Prompt)).all() == []


def test_database_url_override(tmp_path, monkeypatch, workspace):
    url = f"sqlite:///{tmp_path / 'other.db'}"
    monkeypatch.setenv("RLHF_DATABASE_URL", url)
    with session_scope() as s:
        s.add(User(name="x", role="admin"))
    assert (tmp_path / "other.db").exists()
    assert not (workspace / "rlhf.db").exists()


def test_a_plain_postgresql_url_works_from_the_cli(tmp_path, monkeypatch):
    """RLHF_DATABASE_URL=postgresql://... (as the README says, no driver named) runs on psycopg 3, migrations included."""
    need_postgres()
    monkeypatch.setenv("RLHF_HOME", str(tmp_path))
    with fresh_postgres(migrated=False) as url:
        plain = url.replace("postgresql+psycopg://", "postgresql://")
        out = run_cli("users", "list", env={"RLHF_DATABASE_URL": plain})
        assert out.returncode == 0, out.stderr
        with session_scope(plain) as s:
            assert set(s.scalars(text("select version_num from alembic_version"))) == heads()
        assert not (tmp_path / "rlhf.db").exists()


def test_two_processes_opening_a_fresh_postgresql_store_migrate_it_once(tmp_path, monkeypatch):
    """Both run the migrations' check at once on an empty database: one creates the tables, the other waits (an
    advisory lock) and finds them, instead of failing on "relation already exists"."""
    need_postgres()
    monkeypatch.setenv("RLHF_HOME", str(tmp_path))
    with fresh_postgres(migrated=False) as url:
        env = {**os.environ, "RLHF_DATABASE_URL": url}
        procs = [subprocess.Popen([sys.executable, "-m", "rlhf.cli", "users", "list"], cwd=REPO, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
        for p in procs:
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
