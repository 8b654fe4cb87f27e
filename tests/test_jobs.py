"""Background jobs (`rlhf.data.jobs`) as the admin page starts and follows them: status in the store, end recorded
by the job's own wrapper, a killed process found failed, only admins, only known commands."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest
from sqlalchemy import func, select

from labeling_app import admin
from rlhf.data.accounts import AccessDenied
from rlhf import paths
from rlhf.data import jobs
from rlhf.data.store import session_scope
from rlhf.data.store.app_models import LabelItem
from rlhf.data.store.job_models import Job
from rlhf.data.store.models import Response
from rlhf.data.registry import register_model
from rlhf.errors import RlhfError

from app_support import count, home, me  # noqa: F401 (home: fixture)


def finished(job_id: int, timeout: float = 300.0) -> Job:
    """The job once it has ended (polled with `refresh`, as the admin page does), or the test fails with its log."""
    deadline = time.monotonic() + timeout
    while True:
        with session_scope() as db:
            jobs.refresh(db)
            job = jobs.get(db, job_id)
        if job.status in ("done", "failed"):
            return job
        if time.monotonic() > deadline:
            pytest.fail(f"job {job_id} still {job.status} after {timeout:.0f} s; its log:\n" + "\n".join(jobs.log_tail(job, 30)))
        time.sleep(0.2)


def test_a_generate_job_ends_done_and_the_queue_gains_rank_items(home, tiny_model):
    root = me("root")
    assert admin.admin_refresh_queue(root) == "queue refreshed: 3 new write items, 0 new rank items"
    admin.admin_snapshot(root, "prompts")
    with session_scope() as db:
        register_model(db, name="sft", stage="sft", base="tiny", path=str(tiny_model), dataset_versions=[], config={},
                       metrics={}, seed=0)
    admin.admin_generate(root, "sft@latest", "prompts@latest", 2)
    job = finished(1)
    assert (job.status, job.exit_code, job.error, job.kind, job.created_by) == ("done", 0, None, "generate", "root")
    assert job.started_at and job.finished_at >= job.started_at
    with session_scope() as db:
        per_prompt = db.execute(select(func.count()).select_from(Response).where(Response.model_version == "sft@v1")
                                .group_by(Response.prompt_id)).scalars().all()
    rankable = sum(1 for n in per_prompt if n >= 2)  # a random model can say nothing: empty answers are not stored
    assert rankable >= 1
    status = admin.admin_jobs(root)
    assert status.startswith(f"queue refreshed: 0 new write items, {rankable} new rank items\n[done] job 1 by root, ")
    with session_scope() as db:
        assert db.scalar(select(func.count()).select_from(LabelItem).where(LabelItem.kind == "rank")) == rankable
    assert "queue refreshed: 0 new write items, 0 new rank items" in admin.admin_jobs(root)  # idempotent


def test_a_failing_job_ends_failed_with_its_error_line_on_the_admin_page(home):
    root = me("root")
    msg = admin.admin_generate(root, "sft@latest", "prompts@latest", 4)  # no model registered
    log = paths.runs_dir() / "jobs" / "1.log"
    assert msg == f"started: rlhf generate --model sft@latest --prompts prompts@latest --k 4 (log: {log}); " \
                  "press Check jobs to follow it"
    job = finished(1)
    assert (job.status, job.exit_code) == ("failed", 2)
    assert job.error == "unknown model version sft@latest; no 'sft' models registered yet"
    assert "error: unknown model version sft@latest" in log.read_text()
    status = admin.admin_jobs(root)
    assert status.startswith("[failed (exit 2)] job 1 by root, ")
    assert "generate --model sft@latest --prompts prompts@latest --k 4\n" \
           "    error: unknown model version sft@latest; no 'sft' models registered yet" in status
    assert "queue refreshed" not in status


def test_a_killed_job_is_found_failed(home):
    root = me("root")
    admin.admin_generate(root, "sft@latest", "prompts@latest", 4)
    with session_scope() as db:
        job = jobs.get(db, 1)
        assert job.status in ("queued", "running") and job.pid
    os.killpg(job.pid, signal.SIGKILL)  # the wrapper leads the job's process group (start_new_session)
    job = finished(1)
    assert (job.status, job.exit_code) == ("failed", None)
    assert job.error.startswith(f"the process died (pid {job.pid})")
    assert admin.admin_jobs(root).startswith("[failed] job 1 by root, ")


def test_an_annotator_may_not_start_one(home):
    with pytest.raises(AccessDenied, match="ana is annotator, this needs the admin role"):
        admin.admin_generate(me("ana"), "sft@latest", "prompts@latest", 4)
    assert count(Job) == 0 and not (paths.runs_dir() / "jobs").exists()


@pytest.mark.parametrize("kind, argv, error", [
    ("train", ["--model", "sft@v1"], "job kind 'train': expected one of generate"),
    ("generate", ["--model", "sft@v1", "--output", "/etc/passwd"], "option '--output': expected one of --model, --prompts, --k"),
    ("generate", ["--model", "--help"], "model: expected a name like sft@latest or prompts@v1, got '--help'"),
    ("generate", ["--prompts", "prompts@v1 --k 9"], "prompts: expected a name like"),
    ("generate", ["--model"], "options come in `--option value` pairs"),
])
def test_only_known_commands_with_their_own_options_run(home, kind, argv, error):
    with pytest.raises(RlhfError, match=re.escape(error)):
        with session_scope() as db:
            jobs.start(db, kind, argv, created_by="root")
    assert count(Job) == 0


def test_a_job_shows_the_command_a_person_would_type():
    from rlhf.data.store.job_models import Job

    assert Job(kind="generate", argv=["--model", "sft@v1", "--k", "4"]).command == "rlhf generate --model sft@v1 --k 4"
    assert Job(kind="prioritize", argv=["--model", "rm@v2"]).command == "rlhf queue prioritize --model rm@v2"
