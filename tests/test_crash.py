"""Kill -9 at random points: nothing committed is lost, nothing half-made is visible, nothing left blocks the next run.

Each test runs a real subprocess that does one kind of work in a loop and prints a line after each
commit (`committed ...`), kills it with SIGKILL after a random delay drawn from a seeded RNG, then
checks the store, the registry and the model folders as the next process would find them, and runs
that next step. A few seeds by default (about a minute in all); `-m slow` runs many more and the
PostgreSQL side of the app's crash.
"""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app_support import PASSWORD, candidates, home, set_settings  # noqa: F401 (home: fixture)
from conftest import REPO
from rlhf.data import registry
from rlhf.data.store import session_scope
from rlhf.data.store.app_models import Assignment, LabelItem
from rlhf.data.store.models import DatasetVersion, Demonstration, ModelVersion, Prompt, Ranking

SEEDS = [0, 1, 2, *(pytest.param(s, marks=pytest.mark.slow) for s in range(3, 15))]
# the store: SQLite by default (its files are what a crash can tear), PostgreSQL too under -m slow
pytestmark = pytest.mark.parametrize("database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)],
                                     indirect=True)


def killed_at_random(code: str, args: list[str], seed: int, max_delay: float) -> list[str]:
    """Run `python -c code args...` until it prints "ready", SIGKILL it after a random delay, return its output lines."""
    proc = subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO, env=dict(os.environ), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline().strip()
    assert first == "ready", f"the child did not start: {first!r} {proc.stderr.read()[-3000:]}"
    time.sleep(random.Random(seed).uniform(0.0, max_delay))  # the random kill point (the test's subject, not a wait)
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"the child ended by itself ({proc.returncode}) before the kill: {err[-3000:]}"
    return out.splitlines()


def committed(lines: list[str]) -> list[str]:
    return [line.split(" ", 1)[1] for line in lines if line.startswith("committed ")]


# --------------------------------------------------------------------------- an import

IMPORT = """
import json, os, pathlib, sys
from rlhf.data.ingest import import_prompts
from rlhf.data.store import session_scope
with session_scope():
    pass  # the store exists and is migrated before the clock starts
folder = pathlib.Path(sys.argv[1])
print("ready", flush=True)
for k in range(10_000):
    tmp, path = folder / f"f{k}.tmp", folder / f"f{k}.jsonl"
    tmp.write_text("".join(json.dumps({"id": f"f{k}-{j}", "messages": [{"role": "user", "content": f"{k}/{j}"}]}) + "\\n"
                           for j in range(1500)))
    os.replace(tmp, path)  # a whole file or none: the next run re-imports it
    with session_scope() as db:
        import_prompts(db, path)
    print(f"committed {k}", flush=True)
"""


@pytest.mark.parametrize("seed", SEEDS)
def test_an_import_killed_anywhere_is_all_or_nothing(home, tmp_path, seed):
    done = {int(k) for k in committed(killed_at_random(IMPORT, [str(tmp_path)], seed, max_delay=4.0))}
    with session_scope() as db:
        per_file = Counter(x.split("-")[0] for x in db.scalars(select(Prompt.external_id).where(Prompt.external_id.like("f%"))))
    files = sorted(tmp_path.glob("f*.jsonl"))
    assert len(files) >= len(done)  # (killed before its first commit: nothing stored, nothing half-stored)
    for k in range(len(files)):
        assert per_file.get(f"f{k}", 0) in (0, 1500), f"file {k} is half imported: {per_file}"  # one transaction each
        if k in done:
            assert per_file[f"f{k}"] == 1500, f"file {k} was committed but is gone"
    from rlhf.data.ingest import import_prompts

    with session_scope() as db:  # the next run imports every file, the killed one included
        added = sum(import_prompts(db, f).added for f in files)
    assert added == 1500 * (len(files) - len(per_file))
    with session_scope() as db:
        assert db.scalar(select(func.count()).select_from(Prompt).where(Prompt.external_id.like("f%"))) == 1500 * len(files)


# --------------------------------------------------------------------------- a registry snapshot

SNAPSHOT = """
import sys
from rlhf.data import registry
from rlhf.data.records import add_prompt
from rlhf.data.store import session_scope
import datasets
print("ready", flush=True)
for i in range(10_000):
    with session_scope() as db:
        add_prompt(db, f"s{i}", [{"role": "user", "content": f"snapshot prompt {i}"}])
        dv, created = registry.snapshot(db, "prompts")
    print(f"committed {dv.ref}", flush=True)
"""


def check_registry(root: Path) -> None:
    """Every version row loads (folder present, hash matching); every vN folder is a version, or the one a killed
    snapshot renamed before its commit (the next snapshot moves it aside)."""
    with session_scope() as db:
        rows = {dv.ref: dv for dv in db.scalars(select(DatasetVersion).where(DatasetVersion.name == "prompts"))}
        for ref in rows:
            registry.load(db, ref, "prompts")
        # each snapshot froze its prompt with it: as many versions as snapshot prompts, in one transaction each
        assert db.scalar(select(func.count()).select_from(Prompt).where(Prompt.external_id.like("s%"))) == len(rows)
    folders = sorted(int(p.name[1:]) for p in root.iterdir() if p.name.startswith("v")) if root.exists() else []
    versions = sorted(dv.version for dv in rows.values())
    assert folders[:len(versions)] == versions and len(folders) - len(versions) <= 1, (folders, versions)


@pytest.mark.parametrize("seed", [0, 1, *(pytest.param(s, marks=pytest.mark.slow) for s in range(2, 12))])
def test_a_snapshot_killed_anywhere_leaves_whole_versions_and_the_next_one_works(home, seed):
    refs = committed(killed_at_random(SNAPSHOT, [], seed, max_delay=6.0))
    root = home / "registry" / "prompts"
    check_registry(root)
    with session_scope() as db:
        assert {dv.ref for dv in db.scalars(select(DatasetVersion))} >= set(refs)  # every committed one is there
    from rlhf.data.records import add_prompt

    with session_scope() as db:
        n = db.scalar(select(func.count()).select_from(DatasetVersion))
    with session_scope() as db:  # the next run: a new version, whatever the killed one left behind
        add_prompt(db, "s-next", [{"role": "user", "content": "after the crash"}])
        dv, created = registry.snapshot(db, "prompts")
    assert created and dv.version == n + 1
    with session_scope() as db:
        registry.load(db, dv.ref)


# --------------------------------------------------------------------------- a stage's save and register

STAGE = """
import dataclasses, pathlib, sys, time
from transformers import AutoModelForCausalLM, AutoTokenizer
from rlhf.train import stage

@dataclasses.dataclass
class Config:
    name: str = "crash"
    mode: str = "full"
    seed: int = 0

model, tok = AutoModelForCausalLM.from_pretrained(sys.argv[1]), AutoTokenizer.from_pretrained(sys.argv[1])
run = stage.Run("sft", Config(), pathlib.Path(sys.argv[2]), time.time())
print("ready", flush=True)
for _ in range(10_000):
    ref, out = stage.save_and_register(run, model, tok, base="tiny", datasets=[], metrics={"loss": 1.0})
    print(f"committed {ref}", flush=True)
"""


def check_models(folder: Path) -> list[str]:
    """Every registered version's files verify; every vN folder is a version or the one a killed save renamed."""
    with session_scope() as db:
        rows = list(db.scalars(select(ModelVersion).where(ModelVersion.name == "crash")))
        for mv in rows:
            assert registry.verify_model(mv).startswith(f"{mv.ref}: verified"), mv.ref
    folders = sorted(int(p.name[1:]) for p in folder.iterdir() if p.name.startswith("v")) if folder.exists() else []
    versions = sorted(mv.version for mv in rows)
    assert folders[:len(versions)] == versions and len(folders) - len(versions) <= 1, (folders, versions)
    return [mv.ref for mv in rows]


@pytest.mark.parametrize("seed", [0, *(pytest.param(s, marks=pytest.mark.slow) for s in range(1, 8))])
def test_a_save_and_register_killed_anywhere_keeps_every_registered_model(home, tiny_model, tmp_path, seed):
    refs = committed(killed_at_random(STAGE, [str(tiny_model), str(tmp_path)], seed, max_delay=8.0))
    stored = check_models(home / "models" / "crash")
    assert set(refs) <= set(stored)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlhf.train import stage

    @dataclasses.dataclass
    class Config:
        name: str = "crash"
        mode: str = "full"
        seed: int = 0

    run = stage.Run("sft", Config(), tmp_path, time.time())
    ref, out = stage.save_and_register(run, AutoModelForCausalLM.from_pretrained(tiny_model),
                                       AutoTokenizer.from_pretrained(tiny_model), base="tiny", datasets=[], metrics={})
    assert ref == f"crash@v{len(stored) + 1}"
    assert set(check_models(home / "models" / "crash")) == {*stored, ref}


# --------------------------------------------------------------------------- a submit burst against the app


def server_pid() -> int:
    """The labeling app this test process started (`serve.served`): its child running `-m labeling_app`."""
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmd = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if fields[1] == me and b"labeling_app" in cmd:
            return int(stat.parent.name)
    raise AssertionError("no labeling_app child process found")


def annotate(url: str, name: str, receipts: list, stop: threading.Event) -> None:
    """Log in and submit (write and rank, in turn) until the server dies or `stop` is set; record every receipt."""
    import httpx

    with httpx.Client(base_url=url, timeout=30) as client:
        try:
            token = client.post("/api/login", json={"name": name, "password": PASSWORD}).json()["token"]
            auth = {"Authorization": f"Bearer {token}"}
            turn = 0
            while not stop.is_set():
                kind = ("write", "rank")[turn % 2]
                turn += 1
                view = client.get(f"/api/next/{kind}", headers=auth).json()
                if view.get("assignment_id") is None:
                    continue
                body = {"assignment_id": view["assignment_id"]}
                body |= {"text": f"{name}'s answer {turn}"} if kind == "write" else {"ranks": list(range(1, len(view["candidates"]) + 1))}
                r = client.post(f"/api/submit/{kind}", json=body, headers=auth)
                if r.status_code == 200:
                    receipts.append((kind, r.json()))
        except httpx.TransportError:  # the server was killed: what it answered before is what we check
            return


def check_app_store() -> None:
    """Every done assignment names a stored row; every item's counter equals its done assignments; overlap holds."""
    with session_scope() as db:
        done = db.execute(select(Assignment.item_id, Assignment.kind, Assignment.result_type, Assignment.result_id)
                          .where(Assignment.status == "done")).all()
        for item_id, kind, result_type, result_id in done:
            model = Demonstration if kind == "write" else Ranking
            assert result_id is not None and db.get(model, result_id) is not None, (item_id, kind, result_id)
        per_item = Counter(item_id for item_id, *_ in done)
        for item in db.scalars(select(LabelItem)):
            assert item.done_count == per_item.get(item.id, 0), f"item {item.id}: counter {item.done_count}"
        assert db.scalar(select(func.count()).select_from(Demonstration)) == sum(1 for _, k, *_ in done if k == "write")


@pytest.mark.parametrize("seed", [0, *(pytest.param(s, marks=pytest.mark.slow) for s in range(1, 4))])
def test_a_submit_burst_killed_anywhere_loses_no_stored_answer(home, seed):
    from labeling_app import serve

    for p in ("p1", "p2", "p3"):
        candidates(p)
    set_settings(rank_overlap=3)
    from rlhf.data import accounts

    from rlhf.data.records import add_prompt

    names = [f"a{i}" for i in range(8)]
    with session_scope() as db:
        for n in names:
            accounts.create_user(db, n, "annotator", PASSWORD)
        for i in range(40):  # enough work for the burst
            add_prompt(db, f"load{i}", [{"role": "user", "content": f"burst prompt {i}"}])
    receipts: list = []
    stop = threading.Event()
    with serve.served(home, timeout=180) as url:
        clients = [threading.Thread(target=annotate, args=(url, n, receipts, stop)) for n in names]
        for c in clients:
            c.start()
        deadline = time.monotonic() + 60
        while len(receipts) < 3 and time.monotonic() < deadline:  # the burst is under way
            time.sleep(0.05)
        time.sleep(random.Random(seed).uniform(0.0, 2.0))  # the random kill point
        os.kill(server_pid(), signal.SIGKILL)
        stop.set()
        for c in clients:
            c.join(60)
    assert receipts, "no submit got through before the kill"
    check_app_store()
    with session_scope() as db:
        for kind, receipt in receipts:  # every answer the server said it stored is there
            model = Demonstration if kind == "write" else Ranking
            assert db.get(model, receipt["id"]) is not None, receipt
    receipts.clear()
    stop.clear()
    with session_scope() as db:  # fresh work, whatever the burst used up
        add_prompt(db, "after-restart", [{"role": "user", "content": "a prompt added after the crash"}])
    with serve.served(home, timeout=180) as url:  # the restarted app takes submits again
        stop_after_one = threading.Thread(target=annotate, args=(url, names[0], receipts, stop))
        stop_after_one.start()
        deadline = time.monotonic() + 60
        while not any(r["status"] == "stored" for _, r in receipts) and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        stop_after_one.join(60)
    assert any(r["status"] == "stored" for _, r in receipts)
    check_app_store()
