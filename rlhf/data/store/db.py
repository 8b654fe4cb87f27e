"""Engine, sessions and schema migrations.

SQLite in WAL mode at `RLHF_HOME/rlhf.db` by default; any SQLAlchemy URL through
`RLHF_DATABASE_URL`: `postgresql://user:pass@host/db` (a team's server) runs on psycopg 3. The
schema is created and upgraded only by Alembic migrations (`rlhf/data/store/migrations`), never by
`create_all`.

Concurrency rests on the database, never on SQLite's single writer: row locks
(`SELECT ... FOR UPDATE SKIP LOCKED`, see labeling_app.queue), conditional updates
(`UPDATE ... WHERE status IN (...)`), and `insert_new` (INSERT ... ON CONFLICT DO NOTHING): a
unique-key clash in one step answers "already there" and never rolls back the caller's transaction.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import JSON, Engine, String, create_engine, event, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from rlhf import paths
from rlhf.errors import InputError

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 72_410_013  # pg_advisory_xact_lock key: one process migrates a PostgreSQL store at a time


def database_url() -> str:
    """`RLHF_DATABASE_URL`, or the workspace's SQLite file, created owner-only (0o600) before SQLite opens it."""
    return os.environ.get("RLHF_DATABASE_URL") or f"sqlite:///{paths.private_file(paths.home() / 'rlhf.db')}"


def normalize_url(url: str) -> str:
    """`postgresql://` and `postgres://` (what people and Heroku-style configs write) -> the psycopg 3 driver.

    >>> normalize_url("postgresql://u:p@db/rlhf"), normalize_url("postgres://db/rlhf")
    ('postgresql+psycopg://u:p@db/rlhf', 'postgresql+psycopg://db/rlhf')
    >>> normalize_url("sqlite:///x.db")
    'sqlite:///x.db'
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer (app + CLI at once)
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")  # wait for a concurrent writer instead of failing
    cur.execute("PRAGMA synchronous=NORMAL")  # safe with WAL; a crash loses no committed transaction's integrity
    cur.close()


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent; on PostgreSQL one process at a time)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # two processes opening a fresh store must not both create tables
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")  # independent branches (app, review) all apply


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def engine_for(url: str) -> Engine:
    """The one (migrated) engine of `url` in this process."""
    url = normalize_url(url)
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = _make_engine(url)
        return engine


class _OneWriterAtATime:
    """SQLite allows one writer; inside one process (the app's worker threads) writers queue on a lock here.

    Without it they queue in SQLite's busy handler, which sleeps in steps of up to 100 ms: a waiting
    writer idles long after the lock is free, and under 50 annotators that idling was most of the
    app's p95. A transaction takes the lock at its first write and gives it back at its commit or
    rollback. Other processes (the CLI, a second app) still meet SQLite's own lock and busy timeout.
    """

    WRITES = re.compile(r"\s*(INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER)\b", re.IGNORECASE)

    def __init__(self, engine: Engine):
        self.lock, self.owner = threading.Lock(), None
        event.listen(engine, "before_cursor_execute", self.before_execute)
        for name in ("commit", "rollback"):
            event.listen(engine, name, lambda conn: self.release(conn.info))
        for name in ("reset", "close", "invalidate"):
            event.listen(engine.pool, name, lambda _dbapi, record, *_: self.release(record.info))

    def before_execute(self, conn, _cursor, statement, *_):
        if conn.info.get("writer") or not self.WRITES.match(statement):
            return
        if self.owner == threading.get_ident():  # this thread already writes through another connection: SQLite decides
            return
        self.lock.acquire()
        self.owner, conn.info["writer"] = threading.get_ident(), True

    def release(self, info: dict) -> None:
        if info.pop("writer", False):
            self.owner = None
            self.lock.release()


def _make_engine(url: str) -> Engine:
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        _OneWriterAtATime(engine)
    else:
        # a server: connections can die under us (restart, idle timeout), so test each one as it is checked out;
        # a pool large enough for the app's worker threads (gradio + the JSON API) without queueing on it
        engine = create_engine(url, pool_pre_ping=True, pool_size=20, max_overflow=20, pool_recycle=1800)
    upgrade(engine)
    return engine


def close_store(url: str | None = None) -> None:
    """Close every pooled connection of the store at `url` (tests drop their database after this)."""
    with _engines_lock:
        engine = _engines.pop(normalize_url(url or database_url()), None)
    if engine is not None:
        engine.dispose()


def open_store(url: str | None = None) -> sessionmaker[Session]:
    """A session factory over the (migrated) store at `url` or the workspace default."""
    return sessionmaker(engine_for(url or database_url()), expire_on_commit=False)


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


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_nul(v) for v in value)
    return False


def check_column_value(table, column: str, value: Any) -> None:
    """Refuse what the column cannot hold, by name, before the database does (PostgreSQL refuses NUL in text and
    enforces VARCHAR(N); SQLite would silently keep both). The entry points check first with better words
    (`rlhf.data.formats`); this is the net under every write: an InputError `TABLE: COLUMN: what is wrong`."""
    col = table.c[column]
    if isinstance(value, str) and isinstance(col.type, String) and col.type.length and len(value) > col.type.length:
        raise InputError(table.name, None, column, f"{len(value)} characters, over the column's limit of {col.type.length}")
    if isinstance(value, str) or isinstance(col.type, JSON):
        if _has_nul(value):
            raise InputError(table.name, None, column, "text contains a NUL character (\\x00); remove it")


@event.listens_for(Session, "before_flush")
def _check_flushed_rows(session: Session, _flush_context, _instances) -> None:
    for obj in (*session.new, *session.dirty):
        state = inspect(obj)
        table = state.mapper.local_table
        for attr in state.mapper.column_attrs:
            if attr.key in state.dict and attr.columns[0].table is table:
                check_column_value(table, attr.columns[0].name, state.dict[attr.key])


def _insert(session: Session):
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def _check_rows(table, rows: list[dict[str, Any]]) -> None:
    for values in rows:
        for column, value in values.items():
            check_column_value(table, column, value)


def insert_new(session: Session, model, values: dict[str, Any]):
    """INSERT one row of `model` unless it would clash with a unique key: the new row (loaded, in the session), or
    None when a twin exists.

    `INSERT ... ON CONFLICT DO NOTHING RETURNING *` (SQLite and PostgreSQL alike): a clash with a
    row another transaction is writing waits for that transaction and then answers None, so the
    caller looks the twin up instead of losing its whole transaction to an IntegrityError. Python
    column defaults (`created_at`, ...) apply as for any ORM insert.
    """
    _check_rows(model.__table__, [values])
    return session.scalar(_insert(session)(model).values(**values).on_conflict_do_nothing().returning(model))


def insert_all(session: Session, model, rows: list[dict[str, Any]]) -> list:
    """`insert_new` for many rows in one statement: the rows stored, loaded (a clash stores and returns nothing for
    its row; match what came back by a unique column)."""
    if not rows:
        return []
    _check_rows(model.__table__, rows)
    return list(session.scalars(_insert(session)(model).on_conflict_do_nothing().returning(model), rows))


def insert_rows(session: Session, model, rows: list[dict[str, Any]], returning: str) -> list:
    """`insert_new` for many rows in one statement: the `returning` column of the rows stored (a clash stores
    nothing and returns nothing for its row)."""
    if not rows:
        return []
    session.flush()  # a Core statement does not autoflush: rows these may reference must be in first
    table = model.__table__
    _check_rows(table, rows)
    return list(session.scalars(_insert(session)(table).on_conflict_do_nothing().returning(table.c[returning]), rows))


def lock_row(session: Session, model, row_id: int) -> None:
    """Hold `model` row `row_id` until the transaction ends: another `lock_row` of it waits (PostgreSQL
    `FOR NO KEY UPDATE`, which still lets rows that reference it be inserted). SQLite has no row locks
    and needs none: its one writer lock serialises the writes that follow."""
    session.execute(select(model.id).where(model.id == row_id).with_for_update(key_share=True))
