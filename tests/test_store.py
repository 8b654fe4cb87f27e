"""The store: migrations, WAL mode, transactions roll back whole."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import select

from rlhf.data.store import session_scope
from rlhf.data.store.models import Prompt, User


def test_schema_from_migrations_in_wal_mode(workspace):
    with session_scope() as s:
        s.add(User(name="ann", role="annotator"))
    db = sqlite3.connect(workspace / "rlhf.db")
    assert db.execute("pragma journal_mode").fetchone()[0] == "wal"
    versions = {r[0] for r in db.execute("select version_num from alembic_version")}
    from alembic.script import ScriptDirectory
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", "rlhf/data/store/migrations")
    assert versions == set(ScriptDirectory.from_config(cfg).get_heads())  # every branch applied
    tables = {r[0] for r in db.execute("select name from sqlite_master where type='table'")}
    assert {"users", "prompts", "responses", "demonstrations", "rankings", "reviews", "dataset_versions",
            "model_versions"} <= tables


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
