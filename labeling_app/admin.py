"""The admin's actions as plain functions `(session, inputs) -> view`: import prompts, generate candidates in
the background, create users, snapshot datasets, project settings, counts. Each one checks the caller is an
admin first (`require`), on the server.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from labeling_app import queue
from labeling_app.auth import ADMINS, require
from labeling_app.state import UserSession
from rlhf import paths
from rlhf.data.store import session_scope
from rlhf.data.store.app_models import Assignment, LabelItem
from rlhf.data.store.models import Demonstration, Prompt, Ranking, Response, User
from rlhf.errors import RlhfError


def admin_import_prompts(s: UserSession, path: str | None, display_name: str | None = None) -> str:
    """Import an uploaded prompts JSONL with the CLI's validation (all or nothing). Returns one line."""
    from rlhf.data.ingest import import_prompts

    with session_scope() as db:
        require(db, s.username, ADMINS, "import prompts")
    if not path:
        raise RlhfError("choose a prompts .jsonl file first")
    shown = display_name or Path(path).name  # gradio keeps uploads under a temporary folder: name the file only
    try:
        with session_scope() as db:
            require(db, s.username, ADMINS, "import prompts")
            report = import_prompts(db, path)
            added = queue.sync_items(db)
    except RlhfError as e:
        raise RlhfError(str(e).replace(str(path), shown)) from None
    return f"{shown}: {report.added} prompts added, {report.duplicates} exact duplicates skipped; {added['write']} new write items"


def _jobs_dir() -> Path:
    d = paths.runs_dir() / "app-jobs"
    d.mkdir(parents=True, exist_ok=True)
    return d


def admin_generate(s: UserSession, model: str, prompts_ref: str, k: int) -> str:
    """Start `rlhf generate` in the background; its log and exit code land in RLHF_HOME/runs/app-jobs/."""
    with session_scope() as db:
        user = require(db, s.username, ADMINS, "generate candidates")
        name = user.name
    model, prompts_ref = (model or "").strip(), (prompts_ref or "").strip()
    for label, value in (("model", model), ("prompts", prompts_ref)):
        if not value or value.startswith("-") or any(c.isspace() for c in value):
            raise RlhfError(f"{label}: expected a name like sft@latest or prompts@v1, got {value!r}")
    try:
        k = int(k)
    except (TypeError, ValueError):
        raise RlhfError(f"k: expected a whole number, got {k!r}") from None
    if not 2 <= k <= 9:
        raise RlhfError(f"k: {k} candidates per prompt; use 2..9")
    job = _jobs_dir() / f"{dt.datetime.now():%Y%m%d-%H%M%S-%f}"
    job.mkdir()
    cmd = [sys.executable, "-m", "rlhf.cli", "generate", "--model", model, "--prompts", prompts_ref, "--k", str(k)]
    (job / "cmd.txt").write_text(f"{shlex.join(cmd)}\n# started by {name}\n")
    script = 'cd "$1"; shift; "$@" >"$JOB/log.txt" 2>&1; echo $? >"$JOB/rc.txt"'
    subprocess.Popen(["bash", "-c", script, "job", str(paths.REPO_ROOT), *cmd], env={**os.environ, "JOB": str(job)},
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    return f"started: rlhf {shlex.join(cmd[3:])} (log: {job / 'log.txt'}); press Check jobs to follow it"


def admin_model_choices(s: UserSession) -> list[str]:
    """Model versions to generate candidates with: the latest of each registered name, every version, the built-in."""
    from rlhf.train.modeling import BUILTIN
    from rlhf.data.store.models import ModelVersion

    with session_scope() as db:
        require(db, s.username, ADMINS, "list models")
        versions = db.execute(select(ModelVersion.name, ModelVersion.version)
                              .order_by(ModelVersion.name, ModelVersion.version.desc())).all()
    latest = [f"{n}@latest" for n in dict.fromkeys(n for n, _ in versions)]
    return latest + [f"{n}@v{v}" for n, v in versions] + [BUILTIN]


def admin_jobs(s: UserSession, limit: int = 5) -> str:
    """The latest background jobs: command, state, last log lines. Finished ones refresh the queue."""
    with session_scope() as db:
        require(db, s.username, ADMINS, "see jobs")
    jobs = sorted(_jobs_dir().iterdir(), reverse=True)[:limit]
    if not jobs:
        return "no jobs yet"
    out, finished = [], False
    for job in jobs:
        cmd = (job / "cmd.txt").read_text().splitlines()[0] if (job / "cmd.txt").exists() else "?"
        rc = (job / "rc.txt").read_text().strip() if (job / "rc.txt").exists() else None
        state = "running" if rc is None else ("done" if rc == "0" else f"failed (exit {rc})")
        finished |= rc == "0"
        log = (job / "log.txt").read_text(errors="replace").strip().splitlines() if (job / "log.txt").exists() else []
        out.append(f"[{state}] {job.name}: {cmd}\n" + "\n".join("    " + line for line in log[-4:]))
    if finished:
        out.insert(0, admin_refresh_queue(s))
    return "\n".join(out)


def admin_create_user(s: UserSession, name: str, role: str, password: str) -> str:
    from rlhf.data import accounts

    with session_scope() as db:
        require(db, s.username, ADMINS, "create users")
        user = accounts.create_user(db, name, role, password)
        return f"created {user.name} ({user.role}): they can log in now"


def admin_snapshot(s: UserSession, name: str, include_pending: bool = False) -> str:
    from rlhf.data import registry

    with session_scope() as db:
        require(db, s.username, ADMINS, "snapshot datasets")
        dv, created = registry.snapshot(db, name, registry.SnapshotOptions(include_pending=bool(include_pending)))
        return f"{dv.ref}: {'new version' if created else 'unchanged content, existing version'}, {dv.row_count} rows"


def admin_counts(s: UserSession) -> list[list]:
    """[what, state, count] rows: users, prompts, queue items, assignments, demonstrations, rankings, responses."""
    with session_scope() as db:
        require(db, s.username, ADMINS, "see counts")
        settings = queue.get_settings(db)
        rows: list[list] = []
        for role, n in db.execute(select(User.role, func.count()).where(User.simulated.is_(False)).group_by(User.role)):
            rows.append(["users", role, n])
        for split, n in db.execute(select(Prompt.split, func.count()).group_by(Prompt.split)):
            rows.append(["prompts", split, n])
        for kind in ("write", "rank"):
            n_items = db.scalar(select(func.count()).select_from(LabelItem).where(LabelItem.kind == kind))
            full = db.scalar(select(func.count()).select_from(LabelItem)
                             .where(LabelItem.kind == kind, LabelItem.done_count >= queue.overlap(settings, kind)))
            rows.append([f"{kind} items", f"complete (overlap {queue.overlap(settings, kind)})", full])
            rows.append([f"{kind} items", "still open", n_items - full])
        for kind, status, n in db.execute(select(Assignment.kind, Assignment.status, func.count())
                                          .group_by(Assignment.kind, Assignment.status).order_by(Assignment.kind)):
            rows.append([f"{kind} assignments", status, n])
        for model, label in ((Demonstration, "demonstrations"), (Ranking, "rankings")):
            for status, n in db.execute(select(model.status, func.count()).group_by(model.status).order_by(model.status)):
                rows.append([label, status, n])
        for origin, n in db.execute(select(Response.origin, func.count()).group_by(Response.origin)):
            rows.append(["responses", origin, n])
        return rows


def admin_get_settings(s: UserSession) -> dict:
    with session_scope() as db:
        require(db, s.username, ADMINS, "see settings")
        return queue.get_settings(db)


def admin_save_settings(s: UserSession, **values) -> str:
    with session_scope() as db:
        user = require(db, s.username, ADMINS, "change settings")
        try:
            queue.put_settings(db, values, by=user.name)
        except queue.QueueError as e:
            raise RlhfError(str(e)) from None
        return f"settings saved: {', '.join(sorted(values))}"


def admin_refresh_queue(s: UserSession) -> str:
    with session_scope() as db:
        require(db, s.username, ADMINS, "refresh the queue")
        added = queue.sync_items(db)
        return f"queue refreshed: {added['write']} new write items, {added['rank']} new rank items"
