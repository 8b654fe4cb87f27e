"""Load test of the labeling app: N simulated annotators use the JSON API on loopback for a bounded time.

    python bench/app_load.py                      # 50 annotators flat out, 30 s, SQLite in a fresh temporary workspace
    python bench/app_load.py --think 2            # 50 annotators at a realistic pace: each submits every ~2 s
    python bench/app_load.py --database postgresql://localhost/empty_db --think 2 --seconds 300
    python bench/app_load.py --users 20 --seconds 10 --double-submit 0.2

What it does, in steps:
1. a fresh RLHF_HOME (temporary unless --home) with P prompts, K model candidates each, N annotators
   (passwords hashed with the cheap argon2 profile, RLHF_PASSWORD_HASH=fast: login cost is not what
   is measured here); the store is SQLite in that home, or the empty database `--database URL` names;
2. `python -m labeling_app` on 127.0.0.1 and a free port (never another interface);
3. N concurrent clients (asyncio + httpx): log in, then until the deadline: GET /api/next/{write|rank},
   think (`--think` seconds, drawn from 0.5-1.5 times it; 0 = flat out), POST the answer or a random
   ranking with ties; a share of submits (--double-submit) is sent twice
   at the same moment, like a double click, and must come back once "stored" and once "duplicate";
   a dropped connection is retried once (a retried submit is answered "duplicate" if it had landed);
4. the store is checked: rows expected (distinct row ids in the receipts) == rows stored, no annotator has
   two rows for one item, no item got more than its overlap N.

Ends with one line `RESULT {json}`: submits/s, p50/p95 latency (ms) of submit and next, rows
expected vs stored, duplicates, overlap violations, errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "load-test-password"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--users", type=int, default=50, help="concurrent simulated annotators")
    p.add_argument("--seconds", type=float, default=30.0, help="how long the clients submit")
    p.add_argument("--prompts", type=int, default=800, help="prompts in the queue (each: 1 write item + 1 rank item)")
    p.add_argument("--k", type=int, default=4, help="candidates per rank item")
    p.add_argument("--overlap", type=int, default=3, help="rank_overlap N (write overlap stays 1)")
    p.add_argument("--write-share", type=float, default=0.5, help="share of turns spent writing (the rest ranks)")
    p.add_argument("--double-submit", type=float, default=0.1, help="share of submits sent twice at once")
    p.add_argument("--think", type=float, default=0.0,
                   help="seconds each annotator spends on an item before submitting (mean; 0 = flat out)")
    p.add_argument("--database", help="store URL (postgresql://...; an empty database); default: SQLite in the workspace")
    p.add_argument("--home", type=Path, help="workspace to create (default: a temporary folder, removed after)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


# --------------------------------------------------------------------------- step 1. the workspace


def seed_store(args) -> None:
    from sqlalchemy import select

    from labeling_app import queue
    from rlhf.data import accounts as auth
    from rlhf.data.records import add_prompts, add_response
    from rlhf.data.store import session_scope
    from rlhf.data.store.models import Prompt

    with session_scope() as db:
        for i in range(args.users):
            auth.create_user(db, f"annotator{i:03d}", "annotator", PASSWORD)
        add_prompts(db, [("bench", None, {"id": f"load-{i}", "tags": ["load"], "messages": [
            {"role": "user", "content": f"Load-test prompt {i}: explain topic {i} in two sentences."}]})
            for i in range(args.prompts)])
        for i, p in enumerate(db.scalars(select(Prompt).order_by(Prompt.id)).all()):
            for j in range(args.k):
                add_response(db, p, f"Candidate {j} for prompt {i}: " + "lorem ipsum " * (5 + 3 * j), origin="model",
                             model_version="bench@v1", generation={"index": j})
        queue.put_settings(db, {"rank_overlap": args.overlap, "write_overlap": 1}, by="bench")
        queue.sync_items(db)


# --------------------------------------------------------------------------- step 3. the clients


class Stats:
    def __init__(self):
        self.submit_ms: list[float] = []
        self.next_ms: list[float] = []
        self.stored: dict[str, set[int]] = {"write": set(), "rank": set()}
        self.duplicates_returned = 0
        self.double_submits = 0
        self.double_submit_failures = 0  # a double submit that stored two rows
        self.errors: list[str] = []
        self.drained = 0  # clients that ran out of work before the deadline
        self.retries = 0  # requests re-sent after a dropped connection


async def call(client, method: str, path: str, stats: Stats, what: str, **kw) -> dict | None:
    """One request's JSON answer, or None with the error recorded (`what: status text`). A dropped connection is
    retried once (safe for submits too: they are idempotent)."""
    import httpx

    for attempt in range(2):
        try:
            r = await client.request(method, path, **kw)
        except httpx.TransportError as e:
            stats.retries += 1
            if attempt == 1:
                stats.errors.append(f"{what}: {type(e).__name__}")
                return None
            continue
        if r.status_code != 200:
            stats.errors.append(f"{what}: {r.status_code} {r.text[:200]}")
            return None
        return r.json()


async def timed(samples: list[float], coro):
    t0 = time.perf_counter()
    try:
        return await coro
    finally:
        samples.append((time.perf_counter() - t0) * 1000)


async def annotator(client, name: str, deadline: float, args, stats: Stats, rng: random.Random) -> None:
    login = await call(client, "POST", "/api/login", stats, f"login {name}", json={"name": name, "password": PASSWORD})
    if login is None:
        return
    headers = {"Authorization": f"Bearer {login['token']}"}
    empty = set()
    while time.perf_counter() < deadline:
        kind = "write" if rng.random() < args.write_share else "rank"
        if kind in empty:
            kind = "rank" if kind == "write" else "write"
        view = await timed(stats.next_ms, call(client, "GET", f"/api/next/{kind}", stats, f"next {kind}", headers=headers))
        if view is None:
            continue
        if view["assignment_id"] is None:
            empty.add(kind)
            if len(empty) == 2:
                stats.drained += 1
                return
            continue
        if args.think:
            await asyncio.sleep(min(args.think * rng.uniform(0.5, 1.5), max(0.0, deadline - time.perf_counter())))
        if kind == "write":
            body = {"assignment_id": view["assignment_id"], "text": f"{name}'s answer to {view['prompt_ref']}."}
        else:
            k = len(view["candidates"])
            body = {"assignment_id": view["assignment_id"], "ranks": [rng.randint(1, k) for _ in range(k)],
                    "all_bad": rng.random() < 0.05, "reason": "load test"}
        double = rng.random() < args.double_submit
        submit = call(client, "POST", f"/api/submit/{kind}", stats, f"submit {kind}", json=body, headers=headers)
        receipts = await timed(stats.submit_ms, asyncio.gather(
            submit, *([call(client, "POST", f"/api/submit/{kind}", stats, f"submit {kind}", json=body, headers=headers)]
                      if double else [])))
        statuses, ids = [], set()
        for receipt in receipts:
            if receipt is None:
                continue
            statuses.append(receipt["status"])
            ids.add(receipt["id"])
            if receipt["id"] is None:
                stats.errors.append(f"submit {kind}: a {receipt['status']} receipt without a row id")
                continue
            stats.stored[kind].add(receipt["id"])  # a duplicate names the row its twin stored
            stats.duplicates_returned += receipt["status"] == "duplicate"
        if double:
            stats.double_submits += 1
            stats.double_submit_failures += statuses.count("stored") > 1 or len(ids) > 1  # two rows for one click


async def drive(url: str, args, stats: Stats) -> float:
    import httpx

    limits = httpx.Limits(max_connections=args.users * 2 + 10, max_keepalive_connections=args.users * 2 + 10)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
        rng = random.Random(args.seed)
        deadline = time.perf_counter() + args.seconds
        t0 = time.perf_counter()
        await asyncio.gather(*(annotator(client, f"annotator{i:03d}", deadline, args, stats, random.Random(rng.random()))
                               for i in range(args.users)))
        return time.perf_counter() - t0


# --------------------------------------------------------------------------- step 4. the check


def store_is_empty() -> bool:
    from sqlalchemy import func, select

    from rlhf.data.store import session_scope
    from rlhf.data.store.models import Prompt

    with session_scope() as db:
        return not db.scalar(select(func.count()).select_from(Prompt))


def check_store(stats: Stats, overlap: int) -> dict:
    from sqlalchemy import func, select

    from rlhf.data.store import session_scope
    from rlhf.data.store.app_models import Assignment
    from rlhf.data.store.models import Demonstration, Ranking

    with session_scope() as db:
        demos = db.scalar(select(func.count()).select_from(Demonstration).where(Demonstration.origin == "human"))
        ranks = db.scalar(select(func.count()).select_from(Ranking).where(Ranking.origin == "human"))
        dup_demos = db.scalar(select(func.count()).select_from(
            select(Demonstration.annotator_id, Demonstration.prompt_id).group_by(Demonstration.annotator_id, Demonstration.prompt_id)
            .having(func.count() > 1).subquery()))
        dup_ranks = db.scalar(select(func.count()).select_from(
            select(Ranking.annotator_id, Ranking.prompt_id).group_by(Ranking.annotator_id, Ranking.prompt_id)
            .having(func.count() > 1).subquery()))
        per_item = db.execute(select(Assignment.kind, func.count()).where(Assignment.status == "done")
                              .group_by(Assignment.item_id, Assignment.kind)).all()
        over = sum(1 for kind, n in per_item if n > (1 if kind == "write" else overlap))
        stored_ids_match = (set(db.scalars(select(Demonstration.id))) == stats.stored["write"]
                            and set(db.scalars(select(Ranking.id))) == stats.stored["rank"])
    return {"rows_stored": demos + ranks, "demonstrations_stored": demos, "rankings_stored": ranks,
            "duplicate_rows": dup_demos + dup_ranks, "overlap_violations": over, "stored_ids_match": stored_ids_match}


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    args = parse_args(argv)
    home = args.home or Path(tempfile.mkdtemp(prefix="rlhf-app-load-"))
    if args.home and home.exists() and any(home.iterdir()):
        sys.exit(f"--home {home} is not empty: the load test needs a fresh workspace")
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update({"RLHF_HOME": str(home), "RLHF_PASSWORD_HASH": "fast"})
    os.environ.pop("RLHF_DATABASE_URL", None)
    if args.database:
        os.environ["RLHF_DATABASE_URL"] = args.database  # the app subprocess inherits it
    sys.path.insert(0, str(REPO))
    if args.database and not store_is_empty():
        sys.exit(f"--database {args.database}: the database already holds prompts; the load test needs an empty one")

    # step 1. the workspace
    t0 = time.time()
    seed_store(args)
    from rlhf.data.store.db import database_url, engine_for

    backend = engine_for(database_url()).dialect.name
    print(f"seeded {home} ({backend}): {args.users} annotators, {args.prompts} prompts x {args.k} candidates "
          f"(rank overlap {args.overlap}) in {time.time() - t0:.1f} s", flush=True)

    # step 2. the app on loopback
    from labeling_app import serve

    try:
        with serve.served(home) as url:
            pace = f"each submitting every ~{args.think:g} s" if args.think else "flat out"
            print(f"app up on {url}; {args.users} annotators {pace} for {args.seconds:.0f} s ...", flush=True)

            # step 3. the clients
            stats = Stats()
            elapsed = asyncio.run(drive(url, args, stats))
    except serve.AppDidNotStart as e:
        sys.exit(str(e))

    # step 4. the check
    check = check_store(stats, args.overlap)
    expected = len(stats.stored["write"]) + len(stats.stored["rank"])
    result = {
        "database": backend,
        "think_s": args.think,
        "users": args.users,
        "seconds": round(elapsed, 1),
        "submits": expected,
        "submits_per_s": round(expected / elapsed, 1),
        "submit_p50_ms": round(pct(stats.submit_ms, 0.50), 1),
        "submit_p95_ms": round(pct(stats.submit_ms, 0.95), 1),
        "next_p50_ms": round(pct(stats.next_ms, 0.50), 1),
        "next_p95_ms": round(pct(stats.next_ms, 0.95), 1),
        "rows_expected": expected,
        **check,
        "double_submits": stats.double_submits,
        "double_submit_failures": stats.double_submit_failures,
        "duplicate_receipts": stats.duplicates_returned,
        "clients_out_of_work": stats.drained,
        "retries": stats.retries,
        "errors": len(stats.errors),
    }
    for e in stats.errors[:5]:
        print("error:", e)
    ok = (result["rows_expected"] == result["rows_stored"] and result["duplicate_rows"] == 0
          and result["overlap_violations"] == 0 and result["stored_ids_match"] and not stats.errors
          and result["double_submit_failures"] == 0)
    result["ok"] = ok
    print(f"{expected} submits in {elapsed:.1f} s = {result['submits_per_s']}/s; submit p50 {result['submit_p50_ms']} ms, "
          f"p95 {result['submit_p95_ms']} ms; rows expected {expected}, stored {result['rows_stored']}, "
          f"duplicates {result['duplicate_rows']}")
    print("RESULT " + json.dumps(result))
    if not args.home:
        shutil.rmtree(home, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
