"""The work queue: which item a person gets next, with overlap N and the fairness rules.

Rules (each one enforced here, on the server, inside the caller's transaction):
- every item goes to N different people (`write_overlap` / `rank_overlap` settings); an item's
  open (not yet submitted) assignment holds a place for `lease_minutes`, then frees it;
- nobody gets the same item twice (a unique (item, user) assignment row, whatever its status;
  a skip counts, so a skipped item never comes back -- Label Studio #1267, OpenAssistant #923);
- nobody ranks a candidate set that contains their own demonstration (`label_item_authors`);
- an open assignment is resumed first, with its draft (Argilla #3098: drafts must survive);
- which item comes next (`_choose`): a `gold_rate` share of claims is a gold item (no overlap limit), rank
  items follow `queue_policy` (random: the oldest; uncertainty: the highest `item_priorities` row first,
  with an `exploration` share of random items), every share drawn per user and claim, so repeatable.

Items come from the store (`sync_items`): one `write` item per prompt, one `rank` item per
(prompt, model version) with at least two candidates from `rlhf generate`, plus the prompt's
human-written responses when there are any. Sync is idempotent and cheap; the app runs it at
start, after admin actions, and whenever a person's queue looks empty.

Shapes: K candidates per rank item (2 <= K <= `max_candidates`); ranks are 1..K, equal = tie.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import random
from dataclasses import dataclass

from sqlalchemy import and_, bindparam, exists, func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from rlhf.data import formats
from rlhf.data.store.db import insert_new, lock_row
from rlhf.data.store.app_models import Assignment, LabelItem, LabelItemAuthor
from rlhf.data.store.loop_models import GoldItem, ItemPriority
from rlhf.data.store.models import Demonstration, Prompt, Response, User, utcnow
from labeling_app.settings import (  # noqa: F401  (the settings, re-exported: queue.DEFAULTS, queue.put_settings, ...)
    BOOL_SETTINGS, DEFAULT_GUIDELINES, DEFAULT_RANK_GUIDELINES, DEFAULTS, FLOAT_SETTINGS, INT_SETTINGS, QUEUE_POLICIES,
    QueueError, get_settings, put_settings)


# --------------------------------------------------------------------------- items


def response_authors(session: Session, prompt_id: int, responses: list[Response]) -> set[int]:
    """Users who wrote one of these responses: recorded in `generation`, or an identical demonstration answer."""
    authors: set[int] = set()
    human = [r for r in responses if r.origin == "human"]
    if not human:
        return authors
    texts = {r.text for r in human}
    for r in human:
        if isinstance(r.generation, dict) and isinstance(r.generation.get("annotator_id"), int):
            authors.add(r.generation["annotator_id"])
    for d in session.scalars(select(Demonstration).where(Demonstration.prompt_id == prompt_id,
                                                         Demonstration.annotator_id.is_not(None))):
        if d.messages and d.messages[-1].get("content") in texts:
            authors.add(d.annotator_id)
    return authors


def _add_item(session: Session, item: dict, authors: set[int] = frozenset()) -> bool:
    """Insert the item unless its key exists (another process syncing at the same moment): True when added."""
    row = insert_new(session, LabelItem, item)
    if row is None:
        return False
    for uid in sorted(authors):
        insert_new(session, LabelItemAuthor, {"item_id": row.id, "user_id": uid})
    return True


def sync_items(session: Session) -> dict:
    """Create the missing write and rank items from the store's prompts and responses. Returns counts.

    Safe beside another process syncing at the same moment: an item is inserted with ON CONFLICT DO
    NOTHING on its unique key (`rlhf.data.store.db.insert_new`), so the second insert of a key adds
    nothing and the caller's transaction (an admin's import, a submit) goes on whole.
    """
    return _sync_items(session)


def _sync_items(session: Session) -> dict:
    settings = get_settings(session)
    added = {"write": 0, "rank": 0}
    # one write item per prompt
    have_write = select(LabelItem.prompt_id).where(LabelItem.kind == "write")
    for pid in session.scalars(select(Prompt.id).where(Prompt.id.not_in(have_write)).order_by(Prompt.id)).all():
        added["write"] += _add_item(session, dict(kind="write", key=f"write:{pid}", prompt_id=pid, response_ids=[]))
    # one rank item per (prompt, model version) with >= 2 model candidates; imported rankings' responses are already ranked
    groups = session.execute(select(Response.prompt_id, Response.model_version, func.count(Response.id))
                             .where(Response.origin == "model", Response.model_version != "imported")
                             .group_by(Response.prompt_id, Response.model_version)
                             .having(func.count(Response.id) >= 2)).all()
    existing = set(session.scalars(select(LabelItem.key).where(LabelItem.kind == "rank")))
    k_max = int(settings["max_candidates"])
    for pid, version, _n in groups:
        key = f"rank:{pid}:{version}"
        if key in existing:
            continue
        model = list(session.scalars(select(Response).where(Response.prompt_id == pid, Response.origin == "model",
                                                            Response.model_version == version).order_by(Response.id)))
        human = list(session.scalars(select(Response).where(Response.prompt_id == pid, Response.origin == "human")
                                     .order_by(Response.id)))
        chosen = (model[:k_max - min(len(human), 1)] + human[:1]) if human else model[:k_max]
        chosen.sort(key=lambda r: r.id)
        authors = response_authors(session, pid, chosen)
        item = dict(kind="rank", key=key, prompt_id=pid, response_ids=[r.id for r in chosen])
        added["rank"] += _add_item(session, item, authors)
    return added


# --------------------------------------------------------------------------- assignments


def _now() -> dt.datetime:
    return utcnow()


def overlap(settings: dict, kind: str) -> int:
    return int(settings["write_overlap" if kind == "write" else "rank_overlap"])


def _places(settings: dict, kind: str, user_id: int, now: dt.datetime) -> dict:
    """The values bound into the queue's statements: who asks, for which kind, overlap N, and the lease's start."""
    return {"user_id": user_id, "kind": kind, "n": overlap(settings, kind),
            "since": now - dt.timedelta(minutes=int(settings["lease_minutes"]))}


def _open_places(item_id):
    """Open assignments of an item still holding their overlap place (seen since the lease's start)."""
    return (select(func.count(Assignment.id))
            .where(Assignment.item_id == item_id, Assignment.status == "assigned", Assignment.shown_at >= bindparam("since"))
            .scalar_subquery())


@functools.cache
def _statements() -> dict:
    """The queue's hot statements, built once with bound parameters (`_places`): a page view no longer pays for
    building them, and SQLAlchemy reuses their compiled form.

    Available to a user = items of the kind with places left: `done_count` (a counter kept in the
    submit's transaction, so no count over the whole assignments table) + the item's open assignments
    within the lease (a handful of rows) < N, never assigned to them, none of whose candidates they
    wrote, not gold (gold items come only through the gold share, `_choose`). The cheap column test
    comes first, so full items are skipped before any subquery runs.
    """
    n = bindparam("n")
    mine = exists().where(Assignment.item_id == LabelItem.id, Assignment.user_id == bindparam("user_id"))
    authored = exists().where(LabelItemAuthor.item_id == LabelItem.id, LabelItemAuthor.user_id == bindparam("user_id"))
    gold = exists().where(GoldItem.item_id == LabelItem.id)
    available = and_(LabelItem.kind == bindparam("kind"), LabelItem.done_count < n, ~mine, ~authored, ~gold,
                     LabelItem.done_count + _open_places(LabelItem.id).correlate(LabelItem) < n)
    pick = select(LabelItem.id).where(available).order_by(LabelItem.id).limit(1)
    # uncertainty: the highest priority first; items without one after those with one, then the oldest
    by_priority = (select(LabelItem.id).outerjoin(ItemPriority, ItemPriority.item_id == LabelItem.id).where(available)
                   .order_by(ItemPriority.priority.is_(None), ItemPriority.priority.desc(), LabelItem.id).limit(1))
    return {
        "pick_unlocked": pick.with_for_update(skip_locked=True, of=LabelItem),  # the oldest item nobody is claiming
        "pick_wait": pick.with_for_update(of=LabelItem),  # the oldest item, waiting for its claimer
        "priority_unlocked": by_priority.with_for_update(skip_locked=True, of=LabelItem),
        "priority_wait": by_priority.with_for_update(of=LabelItem),
        # exploration: every available item (to draw one from), then the drawn one locked if nobody is claiming it
        "available_ids": select(LabelItem.id).where(available).order_by(LabelItem.id).limit(REMAINING_CAP),
        "lock_one": (select(LabelItem.id).where(LabelItem.id == bindparam("item_id"), available)
                     .with_for_update(skip_locked=True, of=LabelItem)),
        # a gold item of the kind this person has not had (and wrote no candidate of): no overlap limit
        "gold": (select(LabelItem.id).where(LabelItem.kind == bindparam("kind"), gold, ~mine, ~authored)
                 .order_by(LabelItem.id).limit(1)),
        "claims": select(func.count(Assignment.id)).where(Assignment.user_id == bindparam("user_id"),
                                                          Assignment.kind == bindparam("kind")),
        "available": select(func.count()).select_from(select(LabelItem.id).where(available).limit(REMAINING_CAP).subquery()),
        "taken": select(LabelItem.done_count + _open_places(bindparam("item_id"))).where(LabelItem.id == bindparam("item_id")),
    }


def draw(what: str, user_id: int, claim: int) -> float:
    """A number in [0, 1) fixed by (what, user, claim number): the gold and exploration shares are exact and repeatable.

    >>> draw("explore", 1, 0) == draw("explore", 1, 0) != draw("explore", 1, 1)
    True
    """
    digest = hashlib.sha256(f"{what}:{user_id}:{claim}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _choose(session: Session, settings: dict, places: dict, postgres: bool) -> tuple[int | None, bool]:
    """(item id, is gold) of the item to claim next, under the queue policy; (None, False) when nothing is available.

    The user's n-th claim of a kind (n = their assignments of it so far) is a gold item when
    draw("gold", user, n) < gold_rate and one is left for them; else, for rank items under the
    `uncertainty` policy, a random available item when draw("explore", user, n) < exploration
    (seeded by the same numbers), otherwise the one with the highest priority; under `random`,
    the oldest. Every choice but gold's is locked FOR UPDATE SKIP LOCKED (PostgreSQL) like the oldest-first pick.
    """
    st = _statements()
    uncertainty = places["kind"] == "rank" and settings.get("queue_policy") == "uncertainty"
    gold_rate, exploration = float(settings.get("gold_rate") or 0), float(settings.get("exploration") or 0)
    claim = session.scalar(st["claims"], places) if gold_rate > 0 or (uncertainty and exploration > 0) else 0
    if gold_rate > 0 and draw("gold", places["user_id"], claim) < gold_rate:
        item_id = session.scalar(st["gold"], places)
        if item_id is not None:
            return item_id, True
    if uncertainty and exploration > 0 and draw("explore", places["user_id"], claim) < exploration:
        ids = list(session.scalars(st["available_ids"], places))
        if ids:
            rng = random.Random(int(draw("explore-pick", places["user_id"], claim) * 2**53))
            item_id = session.scalar(st["lock_one"], {**places, "item_id": rng.choice(ids)})
            if item_id is not None:
                return item_id, False
    unlocked, wait = ("priority_unlocked", "priority_wait") if uncertainty else ("pick_unlocked", "pick_wait")
    item_id = session.scalar(st[unlocked], places)
    if item_id is None and postgres:
        # every available item is being claimed by someone right now: wait for the first one instead of saying "none"
        item_id = session.scalar(st[wait], places)
    return item_id, False


def places_taken(session: Session, item_id: int, settings: dict, now: dt.datetime) -> int:
    return session.scalar(_statements()["taken"], {"item_id": item_id, "since": _places(settings, "rank", 0, now)["since"]})


def open_assignment(session: Session, user: User, kind: str) -> Assignment | None:
    return session.scalar(select(Assignment).where(Assignment.user_id == user.id, Assignment.kind == kind,
                                                   Assignment.status == "assigned").order_by(Assignment.id))


def next_assignment(session: Session, user: User, kind: str, _synced: bool = False) -> Assignment | None:
    """The user's open assignment of `kind` (resumed), else a new one (`_choose`: policy, gold share), else None.

    Safe under concurrent callers on PostgreSQL as on SQLite: the user's row is locked first (two tabs
    of one person get the same item), the chosen item's row is locked with FOR UPDATE SKIP LOCKED (a
    concurrent claimer takes the next item instead of waiting), and the places are recounted with the
    claim in place, under that lock (SQLite: under its one writer lock), so overlap N is never exceeded.
    """
    now = _now()
    postgres = session.get_bind().dialect.name != "sqlite"
    if postgres:  # SQLite's one writer lock does this already
        lock_row(session, User, user.id)
    current = open_assignment(session, user, kind)
    if current is not None:
        current.shown_at = now  # time on screen restarts; earlier visits are already in `seconds`
        session.flush()
        return current
    settings = get_settings(session)
    for attempt in range(3):
        places = _places(settings, kind, user.id, now)
        item_id, gold = _choose(session, settings, places, postgres)
        if item_id is None:
            break
        a = insert_new(session, Assignment, dict(item_id=item_id, user_id=user.id, kind=kind, status="assigned",
                                                 assigned_at=now, shown_at=now, seconds=0.0))
        if a is None:  # the same person in another process took this item at this very moment
            return open_assignment(session, user, kind)
        # the claim is in and the item is ours (PostgreSQL row lock; SQLite write lock): a fresh count sees every
        # committed place; give this one back if a concurrent caller filled the item's overlap first (a gold item
        # never counts toward its overlap N)
        if gold or places_taken(session, item_id, settings, now) <= overlap(settings, kind):
            return a
        session.delete(a)
        session.flush()
    if not _synced and attempt == 0 and item_id is None:
        # new items may be missing: make them, then look once more (also when a concurrent sync made them first)
        sync_items(session)
        return next_assignment(session, user, kind, _synced=True)
    return None


def complete(session: Session, assignment: Assignment, status: str, note: str | None = None) -> bool:
    """Flip an open assignment to `status` (done | skipped). False when it was no longer open (a double submit)."""
    note = formats.check_note(f"{assignment.kind} item #{assignment.id}", "note", note)
    now = _now()
    elapsed = max(0.0, (now - assignment.shown_at).total_seconds())
    result = session.execute(update(Assignment)
                             .where(Assignment.id == assignment.id, Assignment.status == "assigned")
                             .values(status=status, done_at=now, seconds=Assignment.seconds + elapsed, note=note)
                             .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        return False
    if status == "done":
        session.execute(update(LabelItem).where(LabelItem.id == assignment.item_id)
                        .values(done_count=LabelItem.done_count + 1).execution_options(synchronize_session=False))
    # the values just written, without reloading the row
    seconds = assignment.seconds + elapsed
    for key, value in (("status", status), ("done_at", now), ("seconds", seconds), ("note", note)):
        set_committed_value(assignment, key, value)
    return True


def seconds_on_screen(assignment: Assignment) -> float:
    return round(assignment.seconds, 2)


# --------------------------------------------------------------------------- progress and order


REMAINING_CAP = 1000  # "1000+": counting further would cost every page view a scan of the whole queue


@dataclass(frozen=True)
class Progress:
    done_today: int  # items submitted since 00:00 UTC
    total: int  # items submitted ever
    remaining: int  # items this person can still get now (their open one included), at most REMAINING_CAP

    def line(self, kind: str) -> str:
        noun = "answers written" if kind == "write" else "rankings"
        left = f"{self.remaining}+" if self.remaining >= REMAINING_CAP else str(self.remaining)
        return f"**{self.done_today}** {noun} today · **{self.total}** in total · **{left}** left in your queue"


def progress(session: Session, user: User, kind: str, settings: dict | None = None) -> Progress:
    now = _now()
    settings = settings or get_settings(session)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    done = Assignment.status == "done"
    total, today, open_ = session.execute(
        select(func.count(Assignment.id).filter(done), func.count(Assignment.id).filter(done, Assignment.done_at >= midnight),
               func.count(Assignment.id).filter(Assignment.status == "assigned"))
        .where(Assignment.user_id == user.id, Assignment.kind == kind)).one()
    available = session.scalar(_statements()["available"], _places(settings, kind, user.id, now))
    return Progress(done_today=today, total=total, remaining=min(REMAINING_CAP, available + open_))


def shown_order(user_id: int, item: LabelItem) -> list[int]:
    """The item's response ids in the order this person sees them: shuffled, the same every time for them."""
    seed = int.from_bytes(hashlib.sha256(f"shuffle:{user_id}:{item.id}".encode()).digest()[:8], "big")
    ids = list(item.response_ids)
    random.Random(seed).shuffle(ids)
    return ids


def ranks_to_order(ranks: list, shown: list[int], response_ids: list[int], k: int | None = None,
                   all_bad: bool = False) -> list[list[int]]:
    """Rank numbers per shown candidate (1 = best, equal = tie) -> best-first groups of indices into `response_ids`.

    The ranks are read by `rlhf.data.formats.ranks_to_order` (with `k`, each must be 1..k; errors name
    the answer's letter); this maps the shown positions back to the stored response order.

    >>> ranks_to_order([2, 1, 2, 3], shown=[30, 10, 20, 40], response_ids=[10, 20, 30, 40])
    [[0], [1, 2], [3]]
    """
    positions = formats.ranks_to_order(ranks, k, all_bad)
    return [sorted(response_ids.index(shown[p]) for p in group) for group in positions]
