"""SQLAlchemy 2 models of everything a team records.

Nothing is deleted: reviews, edits and versions add rows. Texts are stored verbatim (HTML and
script stay text; rendering escapes them). `content_hash` columns make exact duplicates detectable.

Sizes: a `String(N)` column holds what the checks of `rlhf.data.formats` let through (`ID_CHARS`,
`NAME_CHARS`, ...: the same constants); text without a natural limit is `Text`. `rlhf.data.store.db`
refuses, before PostgreSQL would, any value over its column's size or with a NUL character.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy import false as sa_false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from rlhf.data.formats import ID_CHARS, MODEL_REF_CHARS, NAME_CHARS, REGISTRY_NAME_CHARS

ROLES = ("annotator", "expert", "admin")
ORIGINS = ("human", "model", "simulated")
STATUSES = ("pending", "approved", "rejected", "superseded")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_CHARS), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # annotator | expert | admin
    password_hash: Mapped[str | None] = mapped_column(String(256))  # None: cannot log in (imported or simulated)
    simulated: Mapped[bool] = mapped_column(Boolean, default=False)  # a rubric, never a person
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())  # `rlhf users disable`
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # +1 ends open sessions/tokens
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Prompt(Base):
    __tablename__ = "prompts"
    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(ID_CHARS), unique=True)  # the `id` of the JSONL format
    messages: Mapped[list[Any]] = mapped_column(JSON)
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    split: Mapped[str] = mapped_column(String(16), default="train")  # train | heldout (tag "heldout")
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Response(Base):
    """A candidate answer to a prompt: written by a person, sampled from a model, or made up by a simulation."""

    __tablename__ = "responses"
    __table_args__ = (UniqueConstraint("prompt_id", "origin", "model_version", "content_hash"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    origin: Mapped[str] = mapped_column(String(16))  # human | model | simulated
    model_version: Mapped[str] = mapped_column(String(MODEL_REF_CHARS), default="")  # e.g. sft@v2; "" when unknown
    generation: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # sampling settings, seed, k index
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Demonstration(Base):
    """An ideal answer. An expert's edit adds a new version (parent_id -> the original), never overwrites."""

    __tablename__ = "demonstrations"
    id: Mapped[int] = mapped_column(primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id"), index=True)
    messages: Mapped[list[Any]] = mapped_column(JSON)  # the prompt's messages + the assistant answer
    annotator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    origin: Mapped[str] = mapped_column(String(16), default="human")
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("demonstrations.id"))
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    seconds_spent: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Ranking(Base):
    """An order over K responses to one prompt, best first; inner lists are ties."""

    __tablename__ = "rankings"
    id: Mapped[int] = mapped_column(primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id"), index=True)
    response_ids: Mapped[list[Any]] = mapped_column(JSON)  # `order` indexes into this list
    order: Mapped[list[Any]] = mapped_column(JSON)  # e.g. [[0], [2, 1], [3]]
    shown_order: Mapped[list[Any] | None] = mapped_column(JSON)  # response ids in the order the annotator saw them
    all_bad: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(Text)
    annotator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    origin: Mapped[str] = mapped_column(String(16), default="human")  # human | simulated
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    seconds_spent: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Review(Base):
    """One review action (approve, reject, edit, adjudicate, ...) with who, when and why. Append-only."""

    __tablename__ = "reviews"
    id: Mapped[int] = mapped_column(primary_key=True)
    item_type: Mapped[str] = mapped_column(String(32))  # demonstration | ranking | ...
    item_id: Mapped[int] = mapped_column(Integer, index=True)
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reviewer_name: Mapped[str] = mapped_column(String(NAME_CHARS))
    verdict: Mapped[str] = mapped_column(String(32))  # approve | reject | edit | adjudicate
    reason: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class DatasetVersion(Base):
    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("name", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(REGISTRY_NAME_CHARS))
    version: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    row_count: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)
    lineage: Mapped[dict[str, Any]] = mapped_column(JSON)  # source row ids, filter, code version
    code_version: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.version}"


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("name", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(REGISTRY_NAME_CHARS))  # sft | rm | ppo | a user's own name
    version: Mapped[int] = mapped_column(Integer)
    stage: Mapped[str] = mapped_column(String(16))
    base: Mapped[str] = mapped_column(Text)  # what it started from: builtin name, path or NAME@vN
    path: Mapped[str] = mapped_column(Text)
    dataset_versions: Mapped[list[Any]] = mapped_column(JSON)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    seed: Mapped[int] = mapped_column(Integer)
    code_version: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    # sha256 over the folder's files (sorted relative paths + bytes) at registration, and each file's own sha256
    # (to name the file that changed); None on versions registered before hashes were recorded
    content_hash: Mapped[str | None] = mapped_column(String(64))
    file_hashes: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.version}"

