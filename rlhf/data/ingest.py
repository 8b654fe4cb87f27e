"""Importing JSONL files into the store: validate the whole file, then write it in one transaction.

One bad line rejects the file and nothing is written. Exact duplicates (same content hash)
are skipped and counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from rlhf.errors import InputError
from rlhf.data.formats import content_hash, load_file
from rlhf.data.store.models import Demonstration, Prompt, Ranking, Response, Review, User

HELDOUT_TAG = "heldout"


@dataclass
class ImportReport:
    kind: str
    file: str
    added: int = 0
    duplicates: int = 0
    ids: list[int] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.file}: {self.added} {self.kind} added, {self.duplicates} exact duplicates skipped"


def get_or_create_user(session: Session, name: str | None, role: str = "annotator", simulated: bool = False) -> User | None:
    """The user called `name` (created without a password, so it cannot log in), or None."""
    if not name:
        return None
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        user = User(name=name, role=role, password_hash=None, simulated=simulated)
        session.add(user)
        session.flush()
    return user


def prompt_hash(messages: list[dict]) -> str:
    return content_hash({"messages": messages})


def approve(session: Session, item_type: str, item, reviewer: str, reason: str) -> None:
    """Mark an item approved and record who did it (an import by a team member counts as a review)."""
    item.status = "approved"
    session.add(Review(item_type=item_type, item_id=item.id, reviewer_name=reviewer, verdict="approve", reason=reason))


def _prompt_lookup(session: Session, file: str, line: int, external_id: str) -> Prompt:
    prompt = session.scalar(select(Prompt).where(Prompt.external_id == external_id))
    if prompt is None:
        raise InputError(file, line, "prompt_id", f"unknown prompt {external_id!r}: import its prompts file first")
    return prompt


def import_prompts(session: Session, path: str | Path) -> ImportReport:
    rows = load_file("prompts", path)
    report = ImportReport("prompts", str(path))
    seen_ids: dict[str, int] = {}
    for line, rec in rows:
        h = prompt_hash(rec["messages"])
        existing = session.scalar(select(Prompt).where(Prompt.content_hash == h))
        if existing is not None:
            report.duplicates += 1
            continue
        if rec["id"] in seen_ids or session.scalar(select(Prompt.id).where(Prompt.external_id == rec["id"])):
            raise InputError(str(path), line, "id", f"prompt id {rec['id']!r} is already used by a prompt with other content")
        seen_ids[rec["id"]] = line
        split = "heldout" if HELDOUT_TAG in rec["tags"] else "train"
        p = Prompt(external_id=rec["id"], messages=rec["messages"], tags=rec["tags"], split=split, content_hash=h)
        session.add(p)
        session.flush()
        report.added += 1
        report.ids.append(p.id)
    return report


def import_demonstrations(session: Session, path: str | Path, approved_by: str | None = None) -> ImportReport:
    rows = load_file("demonstrations", path)
    report = ImportReport("demonstrations", str(path))
    for line, rec in rows:
        prompt = _prompt_lookup(session, str(path), line, rec["prompt_id"])
        if rec["messages"][:-1] != prompt.messages:
            raise InputError(str(path), line, "messages", f"the messages before the answer differ from prompt {rec['prompt_id']!r}")
        h = content_hash({"prompt": prompt.content_hash, "messages": rec["messages"]})
        if session.scalar(select(Demonstration.id).where(Demonstration.content_hash == h)):
            report.duplicates += 1
            continue
        user = get_or_create_user(session, rec["annotator"])
        d = Demonstration(prompt_id=prompt.id, messages=rec["messages"], annotator_id=user.id if user else None,
                          origin="human", status="pending", content_hash=h)
        session.add(d)
        session.flush()
        if approved_by:
            approve(session, "demonstration", d, approved_by, f"imported from {path}")
        report.added += 1
        report.ids.append(d.id)
    return report


def add_response(session: Session, prompt: Prompt, text: str, origin: str, model_version: str = "",
                 generation: dict | None = None) -> Response:
    """The stored response with this text (reused when identical), else a new one."""
    h = content_hash({"text": text})
    r = session.scalar(select(Response).where(Response.prompt_id == prompt.id, Response.origin == origin,
                                              Response.model_version == model_version, Response.content_hash == h))
    if r is None:
        r = Response(prompt_id=prompt.id, text=text, origin=origin, model_version=model_version,
                     generation=generation or {}, content_hash=h)
        session.add(r)
        session.flush()
    return r


def ranking_hash(prompt: Prompt, response_ids: list[int], order: list[list[int]], all_bad: bool, annotator: str | None) -> str:
    return content_hash({"prompt": prompt.content_hash, "responses": response_ids, "order": order,
                         "all_bad": all_bad, "annotator": annotator})


def import_rankings(session: Session, path: str | Path, approved_by: str | None = None) -> ImportReport:
    rows = load_file("rankings", path)
    report = ImportReport("rankings", str(path))
    for line, rec in rows:
        prompt = _prompt_lookup(session, str(path), line, rec["prompt_id"])
        responses = [add_response(session, prompt, t, origin="model", model_version="imported") for t in rec["responses"]]
        ids = [r.id for r in responses]
        h = ranking_hash(prompt, ids, rec["order"], rec["all_bad"], rec["annotator"])
        if session.scalar(select(Ranking.id).where(Ranking.content_hash == h)):
            report.duplicates += 1
            continue
        user = get_or_create_user(session, rec["annotator"])
        # shown_order stays None: a file does not say in which order its annotator saw the answers,
        # and position-bias statistics must not read the file's order as if it were the screen's
        r = Ranking(prompt_id=prompt.id, response_ids=ids, order=rec["order"], shown_order=None, all_bad=rec["all_bad"],
                    reason=rec["reason"], annotator_id=user.id if user else None, origin="human", status="pending",
                    content_hash=h)
        session.add(r)
        session.flush()
        if approved_by:
            approve(session, "ranking", r, approved_by, f"imported from {path}")
        report.added += 1
        report.ids.append(r.id)
    return report


IMPORTERS = {"prompts": import_prompts, "demonstrations": import_demonstrations, "rankings": import_rankings}
