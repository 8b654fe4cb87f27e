"""Every action of the app as a plain function `(session, inputs) -> view`, testable without a server.

Each handler: (1) reloads the caller and checks their role (`require`), (2) does its work in ONE
store transaction (`session_scope`: all or nothing), (3) returns a small dataclass view that the
gradio layout (`app.py`) and the JSON API (`api.py`) both present. Mistakes a person can fix
raise `RlhfError` with a one-line message; a wrong role raises `AccessDenied` (PermissionError).

Idempotency: a submit names its assignment (the item on that tab's screen). The assignment flips
from `assigned` to `done` with a conditional UPDATE in the same transaction as the new row, so a
double click, a second tab or a retried request finds it done and stores nothing
(`Receipt.status == "duplicate"`); the unique `content_hash` of the row (annotator + item) is a
second guard in the database itself.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select

from labeling_app import queue, render
from labeling_app.auth import ADMINS, LABELERS, AccessDenied, require
from labeling_app.state import UserSession
from rlhf import paths
from rlhf.errors import RlhfError
from rlhf.formats import MAX_TEXT_CHARS, content_hash
from rlhf.store import session_scope
from rlhf.store.app_models import Assignment, LabelItem
from rlhf.store.models import ROLES, Demonstration, Prompt, Ranking, Response, User

REASON_CHARS = 300  # the optional one-line reason of a ranking


# --------------------------------------------------------------------------- views


@dataclass(frozen=True)
class Me:
    name: str
    role: str
    pages: tuple[str, ...]  # the pages this role may use


@dataclass
class WriteView:
    assignment_id: int | None  # None: nothing left to write
    prompt_ref: str = ""  # the prompt's external id
    messages: list = field(default_factory=list)  # the conversation so far; the last one is the user's
    draft: str = ""  # restored text of an earlier "save draft"
    guidelines: str = ""  # markdown, written by an admin
    progress: queue.Progress = queue.Progress(0, 0, 0)
    message: str = ""  # feedback on the last action

    def conversation_html(self) -> str:
        if self.assignment_id is None:
            return render.notice("Nothing left to write right now: thank you! New prompts appear here when an admin adds them.")
        return render.conversation(self.messages, title=f"Prompt {self.prompt_ref} · {len(self.messages)} message(s)")


@dataclass
class RankView:
    assignment_id: int | None  # None: nothing left to rank
    prompt_ref: str = ""
    messages: list = field(default_factory=list)
    candidates: list[str] = field(default_factory=list)  # answer texts in this person's shown order (A, B, ...)
    guidelines: str = ""
    progress: queue.Progress = queue.Progress(0, 0, 0)
    message: str = ""

    @property
    def k(self) -> int:
        return len(self.candidates)

    def conversation_html(self) -> str:
        if self.assignment_id is None:
            return render.notice("Nothing left to rank right now: thank you! New candidates appear here after an admin generates them.")
        return render.conversation(self.messages, title=f"Prompt {self.prompt_ref} · rank {self.k} answers")

    def candidate_html(self) -> list[str]:
        return [render.candidate(i, t) for i, t in enumerate(self.candidates)]


@dataclass(frozen=True)
class Receipt:
    status: str  # stored | duplicate | skipped | saved
    kind: str  # demonstration | ranking | skip | draft
    id: int | None = None  # the stored row
    message: str = ""


def as_dict(view) -> dict:
    return dataclasses.asdict(view)


# --------------------------------------------------------------------------- helpers


def whoami(s: UserSession) -> Me:
    with session_scope() as db:
        user = require(db, s.username, ROLES, "whoami")
        pages = ("write", "rank") + (("admin",) if user.role in ADMINS else ())
        return Me(user.name, user.role, pages)


def _mine(db, user: User, assignment_id: int | None, kind: str) -> Assignment:
    if assignment_id is None:
        raise RlhfError(f"no {kind} item on screen: reload the page to get the next one")
    a = db.get(Assignment, int(assignment_id))
    if a is None or a.kind != kind:
        raise RlhfError(f"{kind} item #{assignment_id} does not exist: reload the page")
    if a.user_id != user.id:
        raise AccessDenied(f"{kind} item #{assignment_id} is assigned to someone else")
    return a


def _one_line(text: str | None, limit: int) -> str | None:
    line = " ".join((text or "").split())
    return line[:limit] or None


# --------------------------------------------------------------------------- write


def write_next(s: UserSession, message: str = "") -> WriteView:
    """The next prompt to answer (the open one first, with its draft) and the guidelines."""
    with session_scope() as db:
        user = require(db, s.username, LABELERS, "write")
        a = queue.next_assignment(db, user, "write")
        settings = queue.get_settings(db)
        if a is None:
            s.write_assignment = None
            return WriteView(None, guidelines=settings["guidelines"], progress=queue.progress(db, user, "write", settings),
                             message=message)
        item = db.get(LabelItem, a.item_id)
        prompt = db.get(Prompt, item.prompt_id)
        s.write_assignment = a.id
        draft = (a.draft or {}).get("text", "") if isinstance(a.draft, dict) else ""
        return WriteView(a.id, prompt.external_id, list(prompt.messages), draft, settings["guidelines"],
                         queue.progress(db, user, "write", settings), message)


def write_submit(s: UserSession, text: str) -> Receipt:
    """Store the answer on screen as a pending demonstration (one transaction; a repeat is a no-op)."""
    with session_scope() as db:
        user = require(db, s.username, LABELERS, "write")
        a = _mine(db, user, s.write_assignment, "write")
        if a.status == "done":
            return Receipt("duplicate", "demonstration", a.result_id, "Already submitted: nothing stored twice.")
        if a.status == "skipped":
            raise RlhfError("you skipped this prompt: it cannot be submitted any more")
        answer = (text or "").strip()
        if not answer:
            raise RlhfError("the answer is empty: write the ideal answer, or skip (S)")
        if len(answer) > MAX_TEXT_CHARS:
            raise RlhfError(f"the answer is {len(answer)} characters, over the limit of {MAX_TEXT_CHARS}")
        if "\x00" in answer:
            raise RlhfError("the answer contains a NUL character")
        if not queue.complete(db, a, "done"):  # a twin request got there first: name the row it stored
            db.refresh(a)
            return Receipt("duplicate", "demonstration", a.result_id, "Already submitted: nothing stored twice.")
        item = db.get(LabelItem, a.item_id)
        prompt = db.get(Prompt, item.prompt_id)
        messages = list(prompt.messages) + [{"role": "assistant", "content": answer}]
        d = Demonstration(prompt_id=prompt.id, messages=messages, annotator_id=user.id, origin="human", status="pending",
                          content_hash=content_hash({"prompt": prompt.content_hash, "messages": messages,
                                                     "annotator": user.name, "label_item": item.id}),
                          seconds_spent=queue.seconds_on_screen(a))
        db.add(d)
        db.flush()
        a.result_type, a.result_id, a.draft = "demonstration", d.id, None
        if queue.get_settings(db)["demos_as_candidates"]:
            from rlhf.store.ingest import add_response

            add_response(db, prompt, answer, origin="human",
                         generation={"annotator_id": user.id, "demonstration_id": d.id})
        return Receipt("stored", "demonstration", d.id, f"Saved answer to {prompt.external_id}.")


def write_save_draft(s: UserSession, text: str) -> Receipt:
    with session_scope() as db:
        user = require(db, s.username, LABELERS, "write")
        a = _mine(db, user, s.write_assignment, "write")
        if a.status != "assigned":
            return Receipt("duplicate", "draft", a.id, "This prompt is already finished.")
        a.draft = {"text": (text or "")[:MAX_TEXT_CHARS]}
        return Receipt("saved", "draft", a.id, f"Draft saved {dt.datetime.now():%H:%M:%S}.")


def write_skip(s: UserSession, reason: str = "") -> Receipt:
    return _skip(s, "write", reason)


def _skip(s: UserSession, kind: str, reason: str) -> Receipt:
    with session_scope() as db:
        user = require(db, s.username, LABELERS, kind)
        a = _mine(db, user, s.write_assignment if kind == "write" else s.rank_assignment, kind)
        if a.status != "assigned" or not queue.complete(db, a, "skipped", _one_line(reason, REASON_CHARS)):
            return Receipt("duplicate", "skip", a.id, "Already finished.")
        return Receipt("skipped", "skip", a.id, "Skipped: it will not come back to you.")


# --------------------------------------------------------------------------- rank


def rank_next(s: UserSession, message: str = "") -> RankView:
    """The next candidate set to rank: K answers shuffled for this person, model names hidden."""
    with session_scope() as db:
        user = require(db, s.username, LABELERS, "rank")
        a = queue.next_assignment(db, user, "rank")
        settings = queue.get_settings(db)
        if a is None:
            s.rank_assignment = None
            return RankView(None, guidelines=settings["guidelines"], progress=queue.progress(db, user, "rank", settings),
                            message=message)
        item = db.get(LabelItem, a.item_id)
        prompt = db.get(Prompt, item.prompt_id)
        texts = dict(db.execute(select(Response.id, Response.text).where(Response.id.in_(item.response_ids))).all())
        shown = queue.shown_order(user.id, item)
        s.rank_assignment = a.id
        return RankView(a.id, prompt.external_id, list(prompt.messages), [texts[r] for r in shown],
                        settings["guidelines"], queue.progress(db, user, "rank", settings), message)


def rank_submit(s: UserSession, ranks: list, all_bad: bool = False, reason: str = "") -> Receipt:
    """Store the ranking on screen: `ranks[i]` is the rank (1 = best, equal = tie) of shown answer i."""
    with session_scope() as db:
        user = require(db, s.username, LABELERS, "rank")
        a = _mine(db, user, s.rank_assignment, "rank")
        if a.status == "done":
            return Receipt("duplicate", "ranking", a.result_id, "Already submitted: nothing stored twice.")
        if a.status == "skipped":
            raise RlhfError("you skipped this item: it cannot be submitted any more")
        item = db.get(LabelItem, a.item_id)
        shown = queue.shown_order(user.id, item)
        order = _order_from_ranks(ranks, shown, list(item.response_ids), bool(all_bad))
        if not queue.complete(db, a, "done"):  # a twin request got there first: name the row it stored
            db.refresh(a)
            return Receipt("duplicate", "ranking", a.result_id, "Already submitted: nothing stored twice.")
        prompt = db.get(Prompt, item.prompt_id)
        r = Ranking(prompt_id=prompt.id, response_ids=list(item.response_ids), order=order, shown_order=shown,
                    all_bad=bool(all_bad), reason=_one_line(reason, REASON_CHARS), annotator_id=user.id, origin="human",
                    status="pending", seconds_spent=queue.seconds_on_screen(a),
                    content_hash=content_hash({"prompt": prompt.content_hash, "responses": list(item.response_ids),
                                               "annotator": user.name, "label_item": item.id}))
        db.add(r)
        db.flush()
        a.result_type, a.result_id = "ranking", r.id
        return Receipt("stored", "ranking", r.id, f"Saved ranking of {prompt.external_id}.")


def _order_from_ranks(ranks: list, shown: list[int], response_ids: list[int], all_bad: bool) -> list[list[int]]:
    k = len(shown)
    ranks = list(ranks or [])[:k] + [None] * max(0, k - len(ranks or []))
    values: list[int | None] = []
    for i, r in enumerate(ranks):
        if r in (None, ""):
            values.append(None)
            continue
        try:
            v = int(r)
        except (TypeError, ValueError):
            raise RlhfError(f"answer {render.LETTERS[i]}: rank {r!r} is not a number") from None
        if not 1 <= v <= k:
            raise RlhfError(f"answer {render.LETTERS[i]}: rank {v} is outside 1..{k}")
        values.append(v)
    missing = [render.LETTERS[i] for i, v in enumerate(values) if v is None]
    if all_bad and len(missing) == k:
        return [list(range(k))]  # all bad and not ordered: one group, every answer tied
    if missing:
        raise RlhfError(f"give every answer a rank (1 = best, equal numbers = tie): missing {', '.join(missing)}")
    return queue.ranks_to_order(values, shown, response_ids)


def rank_skip(s: UserSession, reason: str = "") -> Receipt:
    return _skip(s, "rank", reason)


def progress(s: UserSession, kind: str) -> queue.Progress:
    with session_scope() as db:
        user = require(db, s.username, LABELERS, kind)
        return queue.progress(db, user, kind)


# --------------------------------------------------------------------------- admin


def admin_import_prompts(s: UserSession, path: str | None, display_name: str | None = None) -> str:
    """Import an uploaded prompts JSONL with the CLI's validation (all or nothing). Returns one line."""
    from rlhf.store.ingest import import_prompts

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
    from rlhf.modeling import BUILTIN
    from rlhf.store.models import ModelVersion

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
    from rlhf import auth as accounts

    with session_scope() as db:
        require(db, s.username, ADMINS, "create users")
        user = accounts.create_user(db, name, role, password)
        return f"created {user.name} ({user.role}): they can log in now"


def admin_snapshot(s: UserSession, name: str, include_pending: bool = False) -> str:
    from rlhf import registry

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
