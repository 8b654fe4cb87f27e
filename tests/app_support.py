"""Shared fixtures of the app handler tests: a workspace with five users and three prompts."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from conftest import write_jsonl
from labeling_app import queue
from labeling_app.state import UserSession
from rlhf.data import accounts
from rlhf.data.ingest import import_prompts
from rlhf.data.records import add_response
from rlhf.data.store import session_scope
from rlhf.data.store.models import Prompt

PASSWORD = "correct horse battery"
XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
PROMPTS = [
    {"id": "p1", "messages": [{"role": "user", "content": f"Explain this tag: {XSS}"}]},
    {"id": "p2", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                              {"role": "assistant", "content": "Hello! How can I help?"},
                              {"role": "user", "content": "Capital of France?"}]},
    {"id": "p3", "messages": [{"role": "user", "content": "Name a prime number."}]},
]


@pytest.fixture
def home(tmp_path, monkeypatch, database) -> Path:
    """A fresh workspace with users ana, bob, cy (annotators), eve (expert), root (admin) and three prompts,
    on each database (`database`: SQLite and PostgreSQL)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("RLHF_HOME", str(home))
    monkeypatch.setenv("RLHF_PASSWORD_HASH", "fast")
    with session_scope() as db:
        for name, role in (("ana", "annotator"), ("bob", "annotator"), ("cy", "annotator"), ("eve", "expert"),
                           ("root", "admin")):
            accounts.create_user(db, name, role, PASSWORD)
        import_prompts(db, write_jsonl(tmp_path / "prompts.jsonl", PROMPTS))
    return home


def candidates(prompt_ext: str, k: int = 4, version: str = "sft@v1", texts: list[str] | None = None) -> list[int]:
    """K model responses to a prompt, as `rlhf generate` stores them."""
    with session_scope() as db:
        p = db.scalar(select(Prompt).where(Prompt.external_id == prompt_ext))
        texts = texts or [f"{prompt_ext} answer {i} from {version}" for i in range(k)]
        return [add_response(db, p, t, origin="model", model_version=version, generation={"index": i}).id
                for i, t in enumerate(texts)]


def count(model) -> int:
    with session_scope() as db:
        return db.scalar(select(func.count()).select_from(model))


def me(name: str) -> UserSession:
    return UserSession(username=name)


def set_settings(**values):
    with session_scope() as db:
        queue.put_settings(db, values, by="test")
