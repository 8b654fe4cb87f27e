"""The admin's actions as plain functions `(session, inputs) -> view`: import prompts, generate candidates and
prioritize the queue by reward-model uncertainty in the background (jobs with their status in the store,
`rlhf.data.jobs`), create users, snapshot datasets, project settings, counts. Each one checks the caller is an
admin first (`require`), on the server.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from labeling_app import history, queue
from labeling_app.state import UserSession
from rlhf.data import jobs
from rlhf.data.accounts import ADMINS, require
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


def admin_generate(s: UserSession, model: str, prompts_ref: str, k: int) -> str:
    """Start `rlhf generate` as a background job (`rlhf.data.jobs`): its status in the store, its log in RLHF_HOME/runs/jobs/."""
    with session_scope() as db:
        user = require(db, s.username, ADMINS, "generate candidates")
        try:
            k = int(k)
        except (TypeError, ValueError):
            raise RlhfError(f"k: expected a whole number, got {k!r}") from None
        if not 2 <= k <= 9:
            raise RlhfError(f"k: {k} candidates per prompt; use 2..9")
        argv = ["--model", (model or "").strip(), "--prompts", (prompts_ref or "").strip(), "--k", str(k)]
        job = jobs.start(db, "generate", argv, created_by=user.name)
        return f"started: {job.command} (log: {job.log_path}); press Check jobs to follow it"


def admin_prioritize(s: UserSession, model: str) -> str:
    """Start `rlhf queue prioritize` as a background job: each open rank item's uncertainty under the reward model(s)
    `model` names (NAME@vN, NAME@latest, or a comma list such as rm@v1,rm@v2: an ensemble, ordered by its
    disagreement). The queue is refreshed first, so candidates generated since the last refresh are scored too."""
    with session_scope() as db:
        user = require(db, s.username, ADMINS, "prioritize the queue")
        queue.sync_items(db)
        job = jobs.start(db, "prioritize", ["--model", (model or "").strip() or "rm@latest"], created_by=user.name)
        policy = queue.get_settings(db)["queue_policy"]
        note = ("" if policy == "uncertainty" else
                f"; the queue policy is {policy}: choose uncertainty in Project settings for these priorities to count")
        return f"started: {job.command} (log: {job.log_path}); press Check jobs to follow it{note}"


def admin_model_choices(s: UserSession) -> list[str]:
    """Model versions to generate candidates with: the latest of each registered name, every version, the built-in."""
    from rlhf.data.registry import BUILTIN
    from rlhf.data.store.models import ModelVersion

    with session_scope() as db:
        require(db, s.username, ADMINS, "list models")
        versions = db.execute(select(ModelVersion.name, ModelVersion.version)
                              .order_by(ModelVersion.name, ModelVersion.version.desc())).all()
    latest = [f"{n}@latest" for n in dict.fromkeys(n for n, _ in versions)]
    return latest + [f"{n}@v{v}" for n, v in versions] + [BUILTIN]


def admin_jobs(s: UserSession, limit: int = 5) -> str:
    """The latest background jobs: state, command, the log's last lines or the error line. A done generate job refreshes
    the queue; a job whose process died shows as failed."""
    with session_scope() as db:
        require(db, s.username, ADMINS, "see jobs")
        jobs.refresh(db)
        recent = jobs.list_jobs(db, limit)
        out = [_job_lines(job) for job in recent]
    if not recent:
        return "no jobs yet"
    if any(job.kind == "generate" and job.status == "done" for job in recent):
        out.insert(0, admin_refresh_queue(s))
    return "\n".join(out)


def _job_lines(job) -> str:
    state = f"failed (exit {job.exit_code})" if job.status == "failed" and job.exit_code is not None else job.status
    detail = [f"error: {job.error}"] if job.status == "failed" else jobs.log_tail(job)
    return (f"[{state}] job {job.id} by {job.created_by}, {job.created_at:%Y-%m-%d %H:%M:%S}: {job.command}\n"
            + "\n".join("    " + line for line in detail))


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


# the settings form, in its order: key -> value shown when the store has none
FORM_DEFAULTS = {"guidelines": "", "rank_guidelines": "", "write_overlap": 1, "rank_overlap": 3, "max_candidates": 6,
                 "lease_minutes": 60, "session_goal": history.DEFAULT_GOAL, "demos_as_candidates": False,
                 "queue_policy": "random", "exploration": 0.2, "gold_rate": 0.1, "quality_threshold": 0.5,
                 "show_feedback": True}
GUIDELINE_VERSIONS = {"guidelines": "write_guidelines_version", "rank_guidelines": "rank_guidelines_version"}


def admin_get_settings(s: UserSession) -> dict:
    with session_scope() as db:
        require(db, s.username, ADMINS, "see settings")
        return queue.get_settings(db)


def admin_save_settings(s: UserSession, **values) -> str:
    """Store settings; a changed Write or Rank guideline text raises that page's guidelines version by one.

    Keys the queue does not know yet are left out (`rank_guidelines`, `session_goal` and the versions
    need their entries in `queue.DEFAULTS`); a value out of range is an RlhfError naming it."""
    with session_scope() as db:
        user = require(db, s.username, ADMINS, "change settings")
        old = queue.get_settings(db)
        given = sorted(k for k in values if k in queue.DEFAULTS or k not in FORM_DEFAULTS)  # unknown: put_settings says so
        clean = {k: values[k] for k in given}
        for key, version in GUIDELINE_VERSIONS.items():
            if key in clean and version in queue.DEFAULTS and (clean[key] or "") != (old.get(key) or ""):
                clean[version] = int(old.get(version) or 1) + 1
        try:
            queue.put_settings(db, clean, by=user.name)
        except queue.QueueError as e:
            raise RlhfError(str(e)) from None
        return f"settings saved: {', '.join(given)}"


QUALITY_COLUMNS = ["annotator", "gold ranked", "gold agreeing", "gold accuracy", "items with consensus",
                   "agreement (tau-b)", "flag"]


def admin_quality(s: UserSession) -> list[list]:
    """One row per annotator: gold accuracy (a gold ranking agrees when its Kendall tau-b with the reference is > 0),
    mean agreement with the leave-one-out consensus, and a flag when either is under `quality_threshold`."""
    from rlhf.data import gold

    with session_scope() as db:
        require(db, s.username, ADMINS, "see annotator quality")
        threshold = float(queue.get_settings(db)["quality_threshold"])
        quality = gold.annotator_quality(db)

    def num(x):
        return None if x is None else round(x, 3)

    return [[q.annotator, q.gold_answered, q.gold_correct, num(q.gold_accuracy), q.consensus_items, num(q.consensus_tau),
             f"below {threshold:g}" if q.flagged(threshold) else ""] for q in quality.values()]


def admin_refresh_queue(s: UserSession) -> str:
    with session_scope() as db:
        require(db, s.username, ADMINS, "refresh the queue")
        added = queue.sync_items(db)
        return f"queue refreshed: {added['write']} new write items, {added['rank']} new rank items"
