"""Engine, sessions and schema migrations.

SQLite in WAL mode at `RLHF_HOME/rlhf.db` by default; any SQLAlchemy URL through
`RLHF_DATABASE_URL` (PostgreSQL for teams). The schema is created and upgraded only by
Alembic migrations (`rlhf/store/migrations`), never by `create_all`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
from pathlib import Path
from typing import Iterator

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from rlhf import paths

MIGRATIONS = Path(__file__).parent / "migrations"


def database_url() -> str:
    return os.environ.get("RLHF_DATABASE_URL") or f"sqlite:///{paths.home() / 'rlhf.db'}"


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer (app + CLI at once)
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")  # wait for a concurrent writer instead of failing
    cur.execute("PRAGMA synchronous=NORMAL")  # safe with WAL; a crash loses no committed transaction's integrity
    cur.close()


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")  # independent branches (app, review) all apply


@functools.cache
def _engine(url: str) -> Engine:
    kwargs = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    upgrade(engine)
    return engine


def open_store(url: str | None = None) -> sessionmaker[Session]:
    """A session factory over the (migrated) store at `url` or the workspace default."""
    return sessionmaker(_engine(url or database_url()), expire_on_commit=False)


@contextlib.contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """One transaction: commit on success, roll back everything on any error."""
    session = open_store(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        # files written for this transaction (e.g. a registry version renamed into place) go with it
        for path in session.info.pop("on_rollback_remove", []):
            shutil.rmtree(path, ignore_errors=True)
        raise
    finally:
        session.close()
