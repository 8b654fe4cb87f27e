"""Importing JSONL files into the store: validate the whole file, then write it in one transaction.

One bad line rejects the file and nothing is written. Rows are stored by `rlhf.data.records`
(the one writer per kind), whose hash rule for a file's rows is the content the file gives, so
exact duplicates (same content hash) are skipped and counted, also when re-importing an old file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from rlhf.data.formats import load_file
from rlhf.data.records import Approval, Written, add_demonstration, add_prompt, add_ranking, add_response
from rlhf.data.store.models import Prompt
from rlhf.errors import InputError


@dataclass
class ImportReport:
    kind: str
    file: str
    added: int = 0
    duplicates: int = 0
    ids: list[int] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.file}: {self.added} {self.kind} added, {self.duplicates} exact duplicates skipped"

    def count(self, written: Written) -> None:
        if written.created:
            self.added += 1
            self.ids.append(written.row.id)
        else:
            self.duplicates += 1


def _approval(path: str | Path, approved_by: str | None) -> Approval | None:
    """An import by a team member (`--approved-by NAME`) counts as their review."""
    return Approval(approved_by, f"imported from {path}") if approved_by else None


def _prompt_lookup(session: Session, file: str, line: int, external_id: str) -> Prompt:
    prompt = session.scalar(select(Prompt).where(Prompt.external_id == external_id))
    if prompt is None:
        raise InputError(file, line, "prompt_id", f"unknown prompt {external_id!r}: import its prompts file first")
    return prompt


def _prompt_row(session: Session, where: str, line: int, rec: dict, approval: Approval | None) -> Written:
    return add_prompt(session, rec["id"], rec["messages"], rec["tags"], where=where, line=line)


def _demonstration_row(session: Session, where: str, line: int, rec: dict, approval: Approval | None) -> Written:
    prompt = _prompt_lookup(session, where, line, rec["prompt_id"])
    if rec["messages"][:-1] != prompt.messages:
        raise InputError(where, line, "messages", f"the messages before the answer differ from prompt {rec['prompt_id']!r}")
    return add_demonstration(session, prompt, rec["messages"][-1]["content"], annotator=rec["annotator"],
                             approved=approval, where=f"{where}:{line}")


def _ranking_row(session: Session, where: str, line: int, rec: dict, approval: Approval | None) -> Written:
    prompt = _prompt_lookup(session, where, line, rec["prompt_id"])
    responses = [add_response(session, prompt, t, origin="model", model_version="imported") for t in rec["responses"]]
    # shown_order stays None: a file does not say in which order its annotator saw the answers
    return add_ranking(session, prompt, [r.id for r in responses], rec["order"], annotator=rec["annotator"],
                       all_bad=rec["all_bad"], reason=rec["reason"], approved=approval, where=f"{where}:{line}")


ROW_WRITERS = {"prompts": _prompt_row, "demonstrations": _demonstration_row, "rankings": _ranking_row}


def import_file(session: Session, kind: str, path: str | Path, approved_by: str | None = None) -> ImportReport:
    """Validate the whole file of `kind`, then write its rows in the caller's transaction."""
    rows = load_file(kind, path)
    report = ImportReport(kind, str(path))
    approval = _approval(path, approved_by)
    for line, rec in rows:
        report.count(ROW_WRITERS[kind](session, str(path), line, rec, approval))
    return report


def import_prompts(session: Session, path: str | Path) -> ImportReport:
    return import_file(session, "prompts", path)


def import_demonstrations(session: Session, path: str | Path, approved_by: str | None = None) -> ImportReport:
    return import_file(session, "demonstrations", path, approved_by)


def import_rankings(session: Session, path: str | Path, approved_by: str | None = None) -> ImportReport:
    return import_file(session, "rankings", path, approved_by)


IMPORTERS = {"prompts": import_prompts, "demonstrations": import_demonstrations, "rankings": import_rankings}
