"""Tables of the closed loop (issue 16): gold items and item priorities. Imported at the bottom of
`rlhf.data.store.models`; created by migrations `0006_gold_items` and `0007_item_priorities`.

- A *gold item* is a label item an expert has answered for reference: a rank item with a reference
  order (best-first groups of indices into the item's `response_ids`, ties allowed), or a write item
  with an approved demonstration. The queue mixes gold items into people's queues at the `gold_rate`
  setting (they look like any other item and never count toward overlap N); `rlhf.data.gold` scores
  each annotator's rankings of them against the reference. One row per item: marking twice is a no-op.
- An *item priority* says how unsure the latest reward model(s) are about a rank item (higher = label
  sooner); `rlhf.data.priorities` writes them, the queue's `uncertainty` policy reads them, and the
  page shows the reward model's order of the candidates after a submit (`scores`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from rlhf.data.formats import MODEL_REF_CHARS, NAME_CHARS
from rlhf.data.store.models import Base, utcnow


class GoldItem(Base):
    __tablename__ = "gold_items"
    item_id: Mapped[int] = mapped_column(ForeignKey("label_items.id"), primary_key=True)
    order: Mapped[list[Any] | None] = mapped_column(JSON)  # rank: reference best-first groups over response_ids
    demonstration_id: Mapped[int | None] = mapped_column(ForeignKey("demonstrations.id"))  # write: the approved answer
    created_by: Mapped[str] = mapped_column(String(NAME_CHARS))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class ItemPriority(Base):
    __tablename__ = "item_priorities"
    item_id: Mapped[int] = mapped_column(ForeignKey("label_items.id"), primary_key=True)
    model_ref: Mapped[str] = mapped_column(String(MODEL_REF_CHARS))  # the reward model(s) that scored it
    priority: Mapped[float] = mapped_column(Float, index=True)  # higher = more uncertain = label sooner
    # {"responses": {response id: [score per model]}, "margin": ..., "disagreement": ...} (rlhf.data.priorities)
    scores: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
