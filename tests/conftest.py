"""Shared fixtures: an isolated workspace per test, the built-in tokenizer converted once, tiny models, the database.

Tests never touch ./workspace: each one gets its own RLHF_HOME under pytest's tmp_path. The
built-in model is converted from its GGUF once per test session and shared by every workspace and every
subprocess through `RLHF_BUILTIN_DIR` (a fresh RLHF_HOME would otherwise convert it again, ~20 s each).

`database` is the store a test runs on, as a fixture parameter: "sqlite" (the file in RLHF_HOME) and
"postgresql" (a fresh database of its own on the server the PG* variables name, as `pg_virtualenv`
sets them; dropped after the test). A store fixture that takes `database` runs its tests on both.
Without a server the PostgreSQL half is skipped with the reason (pytest -ra prints it), unless
RLHF_REQUIRE_POSTGRES=1 (CI, `.ci/run`): then it fails.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import sys
import uuid
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


@pytest.fixture(scope="session", autouse=True)
def shared_builtin(builtin_cache):
    """Every test and the commands it runs use the session's converted built-in model (`RLHF_BUILTIN_DIR`)."""
    old = os.environ.get("RLHF_BUILTIN_DIR")
    os.environ["RLHF_BUILTIN_DIR"] = str(builtin_cache)
    yield builtin_cache
    if old is None:
        os.environ.pop("RLHF_BUILTIN_DIR", None)
    else:
        os.environ["RLHF_BUILTIN_DIR"] = old


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


DATABASES = ("sqlite", "postgresql")


def _pg_params(dbname: str | None = None) -> dict:
    """psycopg connection parameters from the PG* environment (libpq reads PGHOST, PGPORT, PGUSER, PGPASSWORD)."""
    return {"dbname": dbname or os.environ.get("PGDATABASE") or "postgres", "autocommit": True, "connect_timeout": 5}


def postgres_url(dbname: str) -> str:
    """A SQLAlchemy URL for database `dbname` on the PG* server (credentials in the URL: subprocesses need them)."""
    from sqlalchemy.engine import URL

    port = os.environ.get("PGPORT")
    return URL.create("postgresql+psycopg", username=os.environ.get("PGUSER") or None,
                      password=os.environ.get("PGPASSWORD") or None, host=os.environ.get("PGHOST") or None,
                      port=int(port) if port else None, database=dbname).render_as_string(hide_password=False)


@functools.cache
def postgres_unavailable() -> str | None:
    """Why no PostgreSQL server can be used here (None: one answers)."""
    if not any(os.environ.get(k) for k in ("PGHOST", "PGPORT", "PGDATABASE")):
        return "no PostgreSQL server: PGHOST/PGPORT unset (run the tests inside `pg_virtualenv -o fsync=off -- ...`)"
    try:
        import psycopg
    except ImportError:
        return "psycopg (psycopg[binary]) is not installed"
    try:
        with psycopg.connect(**_pg_params()) as con:
            con.execute("SELECT 1")
    except psycopg.Error as e:
        return f"PostgreSQL at {os.environ.get('PGHOST')}:{os.environ.get('PGPORT')} does not answer: {str(e).strip()}"
    return None


def need_postgres() -> None:
    """Skip (laptop) or fail (RLHF_REQUIRE_POSTGRES=1, CI) when no PostgreSQL server answers."""
    why = postgres_unavailable()
    if why is None:
        return
    if os.environ.get("RLHF_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"RLHF_REQUIRE_POSTGRES=1 but {why}", pytrace=False)
    pytest.skip(why)


@functools.cache
def _postgres_template() -> str:
    """A database migrated once per test session; each test's database is a copy of it (CREATE DATABASE ... TEMPLATE)."""
    import psycopg

    from rlhf.data.store import db

    name = f"rlhf_template_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(**_pg_params()) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    db.engine_for(postgres_url(name))  # runs the migrations
    db.close_store(postgres_url(name))  # a template must have no open connection while it is copied
    return name


def _drop_postgres_template() -> None:
    if _postgres_template.cache_info().currsize:
        import psycopg

        with psycopg.connect(**_pg_params()) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{_postgres_template()}" WITH (FORCE)')


@contextlib.contextmanager
def fresh_postgres(migrated: bool = True):
    """A new database with a random name on the PG* server (a copy of the migrated template, or empty); yields its
    URL and drops it afterwards (closing this process's connections first)."""
    import psycopg

    from rlhf.data.store import db

    name = f"rlhf_test_{uuid.uuid4().hex[:12]}"
    template = f' TEMPLATE "{_postgres_template()}"' if migrated else ""
    with psycopg.connect(**_pg_params()) as con:
        con.execute(f'CREATE DATABASE "{name}"{template} STRATEGY FILE_COPY')
    url = postgres_url(name)
    try:
        yield url
    finally:
        db.close_store(url)
        with psycopg.connect(**_pg_params()) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=DATABASES)
def database(request, monkeypatch) -> str:
    """Run the test on SQLite (RLHF_HOME/rlhf.db) and on a fresh PostgreSQL database: RLHF_DATABASE_URL is set
    for the latter. Returns the name ("sqlite" | "postgresql")."""
    if request.param == "sqlite":
        monkeypatch.delenv("RLHF_DATABASE_URL", raising=False)
        yield "sqlite"
        return
    need_postgres()
    with fresh_postgres() as url:
        monkeypatch.setenv("RLHF_DATABASE_URL", url)
        yield "postgresql"


def pytest_sessionfinish(session, exitstatus):
    _drop_postgres_template()


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
