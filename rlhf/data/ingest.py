"""Importing files into the store: validate the whole file, then write it in one transaction. Our JSONL
(`import_prompts`, ...), and other tools' exports (`import_foreign`: trl shapes, Label Studio, Argilla;
read and checked by `rlhf.data.interop` / `rlhf.data.annotation_tools`).

One bad line rejects the file and nothing is written. The file is streamed twice, line by line:
a first pass validates every line (nothing is held, nothing written), a second writes them in
chunks of `CHUNK` records, a few statements per chunk, so memory does not grow with the file and
a SQLite store's write lock is taken only once the whole file is known to be good and held only
for the write pass (50k prompts: ~3.5 s on a 2-core machine; other writers wait up to 30 s).
Rows are stored by `rlhf.data.records` (the one writer per kind, in its batch form), whose hash
rule for a file's rows is the content the file gives, so exact duplicates (same content hash) are
skipped and counted, also when re-importing an old file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from rlhf.data import annotation_tools, interop
from rlhf.data.formats import check_file, check_name, validate_file
from rlhf.data.records import (Approval, add_demonstration, add_demonstrations, add_prompt, add_prompts, add_ranking,
                               add_rankings, add_response, add_responses, demonstration_row, ranking_row)
from rlhf.data.store.models import Prompt
from rlhf.errors import InputError


@dataclass
class ImportReport:
    kind: str
    file: str
    added: int = 0
    duplicates: int = 0

    def __str__(self) -> str:
        return f"{self.file}: {self.added} {self.kind} added, {self.duplicates} exact duplicates skipped"

    def count(self, created: list[bool]) -> None:
        self.added += sum(created)
        self.duplicates += len(created) - sum(created)


def _approval(path: str | Path, approved_by: str | None) -> Approval | None:
    """An import by a team member (`--approved-by NAME`) counts as their review."""
    return Approval(check_name(str(path), "--approved-by", approved_by), f"imported from {path}") if approved_by else None


def _prompts_of(session: Session, file: str, chunk: list[tuple[int, dict]]) -> dict[str, Prompt]:
    """{external id: Prompt} of the prompts a chunk's records name (one query); an unknown one names its line."""
    found = {p.external_id: p for p in session.scalars(select(Prompt).where(
        Prompt.external_id.in_({rec["prompt_id"] for _, rec in chunk})))}
    for line, rec in chunk:
        if rec["prompt_id"] not in found:
            raise InputError(file, line, "prompt_id", f"unknown prompt {rec['prompt_id']!r}: import its prompts file first")
    return found


def _prompt_rows(session: Session, where: str, chunk: list[tuple[int, dict]], approval: Approval | None) -> list[bool]:
    return add_prompts(session, [(where, line, rec) for line, rec in chunk])


def _demonstration_rows(session: Session, where: str, chunk: list[tuple[int, dict]], approval: Approval | None) -> list[bool]:
    prompts = _prompts_of(session, where, chunk)
    rows = []
    for line, rec in chunk:
        prompt = prompts[rec["prompt_id"]]
        if rec["messages"][:-1] != prompt.messages:
            raise InputError(where, line, "messages", f"the messages before the answer differ from prompt {rec['prompt_id']!r}")
        rows.append(demonstration_row(prompt, rec["messages"][-1]["content"], annotator=rec["annotator"], approved=approval,
                                      where=f"{where}:{line}"))
    return [w.created for w in add_demonstrations(session, rows)]


def _ranking_rows(session: Session, where: str, chunk: list[tuple[int, dict]], approval: Approval | None) -> list[bool]:
    prompts = _prompts_of(session, where, chunk)
    responses = iter(add_responses(session, [(prompts[rec["prompt_id"]], t) for _, rec in chunk for t in rec["responses"]],
                                   origin="model", model_version="imported"))
    rows = [ranking_row(prompts[rec["prompt_id"]], [next(responses).id for _ in rec["responses"]], rec["order"],
                        annotator=rec["annotator"], all_bad=rec["all_bad"], reason=rec["reason"], approved=approval,
                        where=f"{where}:{line}")  # shown_order stays None: a file does not say in which order it was seen
            for line, rec in chunk]
    return [w.created for w in add_rankings(session, rows)]


CHUNK_WRITERS = {"prompts": _prompt_rows, "demonstrations": _demonstration_rows, "rankings": _ranking_rows}
CHUNK = 500
"""records written together: memory stays bounded by this, not by the file"""


def import_file(session: Session, kind: str, path: str | Path, approved_by: str | None = None) -> ImportReport:
    """Validate the whole file of `kind` (first pass), then write its rows in the caller's transaction (second pass).

    The second pass checks each line again as it writes it: a file changed between the passes fails
    on its bad line and the caller's transaction rolls back whole.
    """
    validate_file(kind, path)
    report = ImportReport(kind, str(path))
    approval = _approval(path, approved_by)
    chunk: list[tuple[int, dict]] = []
    for line, rec in check_file(kind, path):
        chunk.append((line, rec))
        if len(chunk) == CHUNK:
            report.count(CHUNK_WRITERS[kind](session, str(path), chunk, approval))
            chunk = []
    report.count(CHUNK_WRITERS[kind](session, str(path), chunk, approval))
    return report


def import_prompts(session: Session, path: str | Path) -> ImportReport:
    return import_file(session, "prompts", path)


def import_demonstrations(session: Session, path: str | Path, approved_by: str | None = None) -> ImportReport:
    return import_file(session, "demonstrations", path, approved_by)


def import_rankings(session: Session, path: str | Path, approved_by: str | None = None) -> ImportReport:
    return import_file(session, "rankings", path, approved_by)


IMPORTERS = {"prompts": import_prompts, "demonstrations": import_demonstrations, "rankings": import_rankings}


# --------------------------------------------------------------------------- other tools' exports


def write_items(session: Session, items: list[interop.Item], report: interop.InteropReport, approved_by: str | None = None) -> interop.InteropReport:
    """Store checked items through `rlhf.data.records` in the caller's transaction (it commits or rolls back all)."""
    approval = Approval(approved_by, f"imported from {report.file}") if approved_by else None
    prompts_seen: set[int] = set()  # a prompt with several records counts once
    for it in items:
        file, _, line = it.where.rpartition(":")
        written = add_prompt(session, it.prompt.id, it.prompt.messages, it.prompt.tags, where=file, line=int(line))
        prompt = written.row
        if prompt.id not in prompts_seen:
            prompts_seen.add(prompt.id)
            report.count("prompts", written.created)
        if it.answer is not None:
            demo = add_demonstration(session, prompt, it.answer, annotator=it.annotator, approved=approval, where=it.where)
            report.count("demonstrations", demo.created)
        elif it.responses:
            ids = [add_response(session, prompt, t, origin="model", model_version=interop.MODEL_VERSION).id for t in it.responses]
            ranking = add_ranking(session, prompt, ids, it.order, annotator=it.annotator, origin=it.origin, reason=it.reason,
                                  approved=approval, where=it.where)
            report.count("rankings", ranking.created)
    return report


def import_foreign(session: Session, source: str, path: str | Path, approved_by: str | None = None, **options) -> interop.InteropReport:
    """Read `path` as `source` (dataset | label-studio | argilla), check it whole, then write it (all or nothing)."""
    readers = {"dataset": interop.read_trl, "label-studio": annotation_tools.read_label_studio,
               "argilla": annotation_tools.read_argilla}
    if source not in readers:
        raise InputError(str(path), None, None, f"unknown source {source!r}: expected one of {', '.join(readers)}")
    report = interop.InteropReport(source, str(path))
    items = readers[source](Path(path), report=report, **options)
    if not items:
        raise InputError(str(path), None, None, f"no {source} records to import"
                         + "".join(f"; {n} {why} left out" for why, n in report.skipped.items()))
    return write_items(session, items, report, approved_by)
