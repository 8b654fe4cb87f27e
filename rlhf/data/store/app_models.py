"""Tables of the labeling app (issue 5): project settings, the work queue and its assignments.

Imported at the bottom of `rlhf.data.store.models`; created by migration `0002_app`.

- A *label item* is one unit of work: `write` (a prompt to answer) or `rank` (a prompt with a
  fixed set of candidate responses, `response_ids`). `key` makes creating the same item twice
  impossible, so two app processes syncing the queue at once cannot double it.
- `label_item_authors` names the people who wrote one of an item's candidates (a human
  response made from their demonstration): they are never served that item.
- An *assignment* is one person's turn at one item. `UniqueConstraint(item_id, user_id)` is
  what makes "an annotator never gets the same item twice" a database fact, and a submit flips
  the row from `assigned` to `done` with a conditional UPDATE: a double click, a second tab or
  a retried HTTP call finds it `done` and stores nothing more (idempotent submits).
- Drafts live on the assignment (`draft`), so a reload or another device restores them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from rlhf.data.formats import NAME_CHARS
from rlhf.data.store.models import Base, utcnow

ITEM_KINDS = ("write", "rank")
ASSIGNMENT_STATUSES = ("assigned", "done", "skipped")


class AppSetting(Base):
    """One project setting (guidelines, overlap N, ...) as a JSON value; see labeling_app.queue.DEFAULTS."""

    __tablename__ = "app_settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    updated_by: Mapped[str] = mapped_column(String(NAME_CHARS), default="")
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class LabelItem(Base):
    __tablename__ = "label_items"
    __table_args__ = (Index("ix_label_items_kind_id", "kind", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # write | rank
    key: Mapped[str] = mapped_column(Text, unique=True)  # write:<prompt id> | rank:<prompt id>:<model version>
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id"), index=True)
    response_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)  # rank: the candidates, sorted by id; write: []
    done_count: Mapped[int] = mapped_column(Integer, default=0)  # submitted assignments; +1 in the submit's transaction
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class LabelItemAuthor(Base):
    """`user_id` wrote one of item `item_id`'s candidates: never show them that item."""

    __tablename__ = "label_item_authors"
    item_id: Mapped[int] = mapped_column(ForeignKey("label_items.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True, index=True)


class Assignment(Base):
    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("item_id", "user_id"),  # never the same item twice, whatever the status
        Index("ix_assignments_user_status", "user_id", "status"),
        Index("ix_assignments_item_status", "item_id", "status"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("label_items.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(8))  # copied from the item: the queue filters on it
    status: Mapped[str] = mapped_column(String(16), default="assigned")  # assigned | done | skipped
    draft: Mapped[Any | None] = mapped_column(JSON)  # write: {"text": ...}; restored when the item is shown again
    assigned_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    shown_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)  # last time it was put on screen
    seconds: Mapped[float] = mapped_column(Float, default=0.0)  # time on screen before `shown_at` (earlier visits)
    done_at: Mapped[dt.datetime | None] = mapped_column(DateTime, index=True)  # submitted or skipped
    result_type: Mapped[str | None] = mapped_column(String(16))  # demonstration | ranking
    result_id: Mapped[int | None] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(Text)  # why it was skipped, when given
