"""Item priorities for the uncertainty queue: the rank items to score, and the one writer of `item_priorities` rows.

`rlhf.train.uncertainty` scores every candidate of every open rank item with the latest reward model(s) and gives
each item a priority (higher = label it sooner); this module reads the items it scores (`open_rank_items`) and
stores what it found (`write_priorities`: one row per item, upserted, all rows in the caller's one transaction).
The labeling app's queue reads the rows back when its policy is `uncertainty`.

An item is open while fewer people ranked it than the project's `rank_overlap` setting asks for; with no setting
stored (a store the app never configured) every rank item counts as open. Imports only rlhf.data and rlhf.errors.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from rlhf.data.store.app_models import AppSetting, LabelItem
from rlhf.data.store.db import _check_rows, _insert
from rlhf.data.store.models import Prompt, Response, utcnow
from rlhf.errors import RlhfError


@dataclass(frozen=True)
class RankItem:
    """One rank item as a reward model reads it."""

    item_id: int
    prompt: list[dict]  # the chat messages (the last one is the user's)
    response_ids: list[int]  # the candidates, in the item's order
    texts: list[str]  # the candidates' texts, same order


@dataclass(frozen=True)
class Priority:
    """What `write_priorities` stores for one item."""

    item_id: int
    model_ref: str  # the reward model(s) that scored it, pinned: "rm@v3" or "rm@v1,rm@v2"
    priority: float  # higher = more uncertain = label sooner
    scores: dict  # {"responses": {response id: [score per model]}, "margin": ..., "disagreement": ...}


def open_rank_items(session: Session, limit: int | None = None) -> list[RankItem]:
    """Rank items still short of `rank_overlap` rankings (every rank item when the setting is not stored), oldest first."""
    overlap = session.scalar(select(AppSetting.value).where(AppSetting.key == "rank_overlap"))
    query = select(LabelItem).where(LabelItem.kind == "rank").order_by(LabelItem.id)
    if overlap is not None:
        query = query.where(LabelItem.done_count < int(overlap))
    items = list(session.scalars(query.limit(limit)))
    ids = {rid for it in items for rid in it.response_ids}
    texts = dict(session.execute(select(Response.id, Response.text).where(Response.id.in_(ids))).all()) if ids else {}
    prompts = dict(session.execute(select(Prompt.id, Prompt.messages).where(
        Prompt.id.in_({it.prompt_id for it in items}))).all()) if items else {}
    out = []
    for it in items:
        rids = [rid for rid in it.response_ids if rid in texts]
        if len(rids) >= 2:  # an item whose candidates are gone cannot be ranked, nor scored
            out.append(RankItem(it.id, list(prompts[it.prompt_id]), rids, [texts[r] for r in rids]))
    return out


def _table():
    try:
        from rlhf.data.store.loop_models import ItemPriority
    except ImportError:  # the closed-loop tables are not in this store's code yet (migration 0007)
        raise RlhfError("this store has no item_priorities table yet (migration 0007_item_priorities): "
                        "update the service and run `rlhf` once to migrate") from None
    return ItemPriority


def write_priorities(session: Session, rows: list[Priority]) -> int:
    """Upsert one `item_priorities` row per item (a newer score replaces the older one) in the caller's transaction.

    One INSERT ... ON CONFLICT (item_id) DO UPDATE statement for all rows, SQLite and PostgreSQL alike, so two
    prioritize runs at once end with one row per item (the last writer's), never an IntegrityError.
    """
    if not rows:
        return 0
    if len({r.item_id for r in rows}) != len(rows):
        raise RlhfError("write_priorities: an item appears twice in one write")
    model = _table()
    now = utcnow()
    values = [{"item_id": r.item_id, "model_ref": r.model_ref, "priority": float(r.priority), "scores": r.scores,
               "updated_at": now} for r in rows]
    _check_rows(model.__table__, values)  # sizes and NULs, refused before PostgreSQL would
    stmt = _insert(session)(model.__table__)
    stmt = stmt.on_conflict_do_update(index_elements=["item_id"], set_={
        c: stmt.excluded[c] for c in ("model_ref", "priority", "scores", "updated_at")})
    session.flush()
    session.execute(stmt, values)
    return len(values)


def read_priorities(session: Session) -> dict[int, float]:
    """item id -> priority, for every item that has one."""
    model = _table()
    return dict(session.execute(select(model.item_id, model.priority)).all())
