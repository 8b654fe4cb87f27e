"""Tables of blind A/B review sessions (issue 6). Imported at the bottom of `rlhf.data.store.models`.

A session compares two model versions on the prompts of one registry snapshot. Each item is one
prompt with both models' answers; which model sits on the left is drawn per item and stored, so
a judge sees "Answer A" (left) and "Answer B" (right) and never a model name. A judgement keeps
both what was clicked (`choice`: left | right | tie) and what it means (`winner`: a | b | tie,
a = the session's `model_a`). Judgements are append-only: a judge who changes their mind adds a
row and the newest one counts.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from rlhf.data.store.models import Base, utcnow

CHOICES = ("left", "right", "tie")
WINNERS = ("a", "b", "tie")


class ABSession(Base):
    __tablename__ = "ab_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(256))  # e.g. "sft@v1 vs ppo@v1 on prompts@v2"
    model_a: Mapped[str] = mapped_column(String(256))  # the baseline, as given (NAME@vN, folder or built-in)
    model_b: Mapped[str] = mapped_column(String(256))  # the challenger: the report's win rate is B's
    prompts_ref: Mapped[str] = mapped_column(String(128))  # the registry snapshot the prompts came from
    generation: Mapped[dict[str, Any]] = mapped_column()  # max_new_tokens, temperature, seed, split, limit
    seed: Mapped[int] = mapped_column(Integer)  # draws the sides and the presentation order
    created_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)  # None: judging is open, the report stays blind


class ABItem(Base):
    __tablename__ = "ab_items"
    __table_args__ = (UniqueConstraint("session_id", "prompt_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("ab_sessions.id"), index=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id"))
    response_a_id: Mapped[int] = mapped_column(ForeignKey("responses.id"))  # model A's answer
    response_b_id: Mapped[int] = mapped_column(ForeignKey("responses.id"))  # model B's answer
    a_on_left: Mapped[bool] = mapped_column(Boolean)  # drawn per item; never shown to a judge
    position: Mapped[int] = mapped_column(Integer)  # presentation order within the session (shuffled)


class ABJudgement(Base):
    __tablename__ = "ab_judgements"
    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("ab_items.id"), index=True)
    judge_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    judge_name: Mapped[str] = mapped_column(String(128))
    choice: Mapped[str] = mapped_column(String(8))  # left | right | tie: what the judge picked on screen
    winner: Mapped[str] = mapped_column(String(8))  # a | b | tie: the choice resolved through a_on_left
    reason: Mapped[str | None] = mapped_column(Text)
    origin: Mapped[str] = mapped_column(String(16), default="human")  # human | simulated (a rubric)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
