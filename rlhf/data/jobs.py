"""Background jobs: an `rlhf` command started from the app, with its status in the store (`jobs` table).

    job = jobs.start(db, "generate", ["--model", "sft@latest", "--prompts", "prompts@latest", "--k", "4"], "root")

`start` records a queued job and launches its wrapper, `python -m rlhf.data.jobs ID`, in a new
session (its own process group, stdin closed, stdout and stderr to RLHF_HOME/runs/jobs/ID.log), so
the job outlives the request that started it and a restart of the app. The wrapper waits until
the row that names it is committed, marks it running, runs `python -m rlhf.cli KIND ARGV...`, and
records done or failed with the exit code and the command's `error: ...` line when it ends.
A wrapper killed before that leaves a job that only looks unfinished: `refresh` marks it failed
("the process died") once its process is gone.

Only the kinds in `KINDS` run, with only their options, and no value may look like an option
(no option injection from a form field). Imports only rlhf.data, rlhf.paths and rlhf.errors.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from rlhf import paths
from rlhf.data.store import session_scope
from rlhf.data.store.job_models import COMMANDS, Job
from rlhf.data.store.models import utcnow
from rlhf.errors import NotFoundError, RlhfError

KINDS = {  # kind -> the options a job may pass
    "generate": ("--model", "--prompts", "--k"),
    "prioritize": ("--model", "--limit"),  # the uncertainty queue's priorities (rlhf.train.uncertainty)
}
UNFINISHED = ("queued", "running")
WAIT_FOR_ROW_S = 60.0  # the wrapper starts before `start`'s transaction commits; a row never committed means no job


def jobs_dir() -> Path:
    d = paths.runs_dir() / "jobs"
    d.mkdir(parents=True, exist_ok=True)
    return d


def check_argv(kind: str, argv: list[str]) -> list[str]:
    """`argv` as `--option value` pairs of a known kind, every value one word that cannot pass as an option.

    >>> check_argv("generate", ["--model", "sft@latest", "--k", "4"])
    ['--model', 'sft@latest', '--k', '4']
    >>> check_argv("generate", ["--model", "--help"])
    Traceback (most recent call last):
    ...
    rlhf.errors.RlhfError: model: expected a name like sft@latest or prompts@v1, got '--help'
    """
    if kind not in KINDS:
        raise RlhfError(f"job kind {kind!r}: expected one of {', '.join(KINDS)}")
    argv = [str(a) for a in argv]
    if len(argv) % 2:
        raise RlhfError(f"{kind} job: options come in `--option value` pairs, got {argv!r}")
    for option, value in zip(argv[::2], argv[1::2]):
        if option not in KINDS[kind]:
            raise RlhfError(f"{kind} job: option {option!r}: expected one of {', '.join(KINDS[kind])}")
        if not value or value.startswith("-") or any(c.isspace() for c in value):
            raise RlhfError(f"{option[2:]}: expected a name like sft@latest or prompts@v1, got {value!r}")
    return argv


def start(session: Session, kind: str, argv: list[str], created_by: str) -> Job:
    """Record a queued job and launch its wrapper; the job runs once this session's transaction commits."""
    argv = check_argv(kind, argv)
    job = Job(kind=kind, argv=argv, status="queued", created_by=created_by, host=socket.gethostname())
    session.add(job)
    session.flush()  # the id names the log and the wrapper's argument
    job.log_path = str(jobs_dir() / f"{job.id}.log")
    with open(job.log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "rlhf.data.jobs", str(job.id)], cwd=paths.REPO_ROOT,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    job.pid = proc.pid  # same transaction as the row: the wrapper runs only a row that names its own pid
    session.flush()
    return job


def _alive(pid: int) -> bool:
    """Whether process `pid` still runs on this host (a zombie has ended: it only waits for its parent)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our own child that ended: reaped here
            return False
    except ChildProcessError:  # not our child: ask the kernel
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):  # no /proc (not Linux): kill(0) is all we know
        return True


def refresh(session: Session) -> int:
    """Mark failed every unfinished job of this host whose wrapper process is gone. Returns how many."""
    host, died = socket.gethostname(), 0
    for job in session.scalars(select(Job).where(Job.status.in_(UNFINISHED), Job.host == host)).all():
        if job.pid is not None and _alive(job.pid):
            continue
        # conditional: a wrapper that recorded its end meanwhile keeps what it wrote
        died += session.execute(update(Job).where(Job.id == job.id, Job.status.in_(UNFINISHED)).values(
            status="failed", finished_at=utcnow(),
            error=f"the process died (pid {job.pid}) before recording how the command ended")).rowcount
    return died


def list_jobs(session: Session, limit: int = 5) -> list[Job]:
    """The newest jobs first."""
    return list(session.scalars(select(Job).order_by(Job.id.desc()).limit(limit)))


def get(session: Session, job_id: int) -> Job:
    job = session.get(Job, int(job_id))
    if job is None:
        raise NotFoundError(f"no job {job_id}: the admin page's Check jobs lists them")
    return job


def log_tail(job: Job, lines: int = 4) -> list[str]:
    """The last `lines` non-empty lines of the job's log (stdout and stderr together)."""
    try:
        with open(job.log_path, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - 16384))  # the tail is enough; a log can be long
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    # a progress bar redraws with \r: keep what was drawn last on each line
    kept = [line.rsplit("\r", 1)[-1].rstrip() for line in text.splitlines()]
    return [line for line in kept if line][-lines:]


def _error_line(job: Job, code: int) -> str:
    """The command's own `error: ...` line (rlhf prints one on a user mistake), else the log's last line."""
    tail = log_tail(job, 50)
    said = [line[len("error: "):] for line in tail if line.startswith("error: ")]
    return said[-1] if said else (tail[-1] if tail else f"exit {code}, nothing in the log")


# --------------------------------------------------------------------------- the wrapper


def run(job_id: int) -> int:
    """The wrapper: wait for the job's row, run its command, record how it ended. Returns the exit code."""
    deadline = time.monotonic() + WAIT_FOR_ROW_S
    while True:
        with session_scope() as db:
            job = db.get(Job, job_id)
            if job is not None and job.pid == os.getpid():
                claimed = db.execute(update(Job).where(Job.id == job_id, Job.status == "queued", Job.pid == os.getpid())
                                     .values(status="running", started_at=utcnow())).rowcount
                kind, argv = job.kind, check_argv(job.kind, job.argv)
                break
        if job is not None or time.monotonic() > deadline:  # another wrapper's job, or its transaction rolled back
            print(f"job {job_id}: no queued job names this process ({os.getpid()}); nothing run", file=sys.stderr)
            return 1
        time.sleep(0.2)
    if not claimed:  # refresh already marked it failed
        return 1
    command = list(COMMANDS.get(kind, (kind,)))
    print(f"$ rlhf {' '.join(command + argv)}", flush=True)
    code = subprocess.call([sys.executable, "-m", "rlhf.cli", *command, *argv], cwd=paths.REPO_ROOT,
                           stdin=subprocess.DEVNULL)  # stdout and stderr: inherited, the job's log
    with session_scope() as db:
        job = db.get(Job, job_id)
        job.status, job.exit_code, job.finished_at = ("done" if code == 0 else "failed"), code, utcnow()
        job.error = None if code == 0 else _error_line(job, code)
    return code


if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        sys.exit("usage: python -m rlhf.data.jobs JOB_ID  (started by rlhf.data.jobs.start, not by hand)")
    sys.exit(run(int(sys.argv[1])))
