"""The table of background jobs (`rlhf.data.jobs`). Imported at the bottom of `rlhf.data.store.models`;
created by migration `0003_jobs`.

A job is one `rlhf <kind> ...` command an admin started from the app. Its row is the only place
that knows it exists: `status` goes queued -> running -> done | failed, written by the job's own
wrapper process (`python -m rlhf.data.jobs ID`) when the command starts and ends, or by
`jobs.refresh` when that wrapper's process is gone without having recorded an end.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from rlhf.data.formats import NAME_CHARS
from rlhf.data.store.models import Base, utcnow

JOB_STATUSES = ("queued", "running", "done", "failed")
COMMANDS = {"prioritize": ("queue", "prioritize")}  # the `rlhf` sub-command of a kind, where it is not the kind itself


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # the `rlhf` sub-command: generate
    argv: Mapped[list[Any]] = mapped_column(JSON)  # its options and values, validated (see jobs.KINDS)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)  # queued | running | done | failed
    exit_code: Mapped[int | None] = mapped_column(Integer)  # the command's exit status, once it ended
    pid: Mapped[int | None] = mapped_column(Integer)  # the wrapper process (leader of the job's process group)
    host: Mapped[str] = mapped_column(String(255), default="")  # where `pid` lives: only that host can tell it died
    log_path: Mapped[str] = mapped_column(Text, default="")  # RLHF_HOME/runs/jobs/<id>.log: stdout and stderr
    created_by: Mapped[str] = mapped_column(String(NAME_CHARS))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    error: Mapped[str | None] = mapped_column(Text)  # failed: the command's `error: ...` line, or why it died

    @property
    def command(self) -> str:
        """The command as a person would type it: `rlhf generate --model ...`, `rlhf queue prioritize ...`."""
        import shlex

        return shlex.join(["rlhf", *COMMANDS.get(self.kind, (self.kind,)), *self.argv])
