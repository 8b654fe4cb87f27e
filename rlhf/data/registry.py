"""The dataset registry: immutable, content-hashed `datasets` snapshots of the store.

A version lives at `RLHF_HOME/registry/NAME/vN/` (Arrow files + manifest.json) and as a
`dataset_versions` row with its lineage. It is written to a temporary folder and renamed into
place, so a crash never leaves a half version. Snapshotting unchanged content returns the
existing version. Loading re-hashes the rows: a tampered snapshot is an IntegrityError.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rlhf import paths
from rlhf.errors import IntegrityError, NotFoundError, RlhfError
from rlhf.data.formats import content_hash
from rlhf.data.store.models import Demonstration, DatasetVersion, Prompt, User, utcnow

REF = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)(?:@(?:v(?P<version>\d+)|(?P<latest>latest)))?$")


@dataclass(frozen=True)
class SnapshotOptions:
    include_pending: bool = False
    """also take items no expert has approved yet (default: approved only)"""
    include_simulated: bool = False
    """also take rankings and responses made by simulated annotators"""


Builder = Callable[[Session, SnapshotOptions], tuple[list[dict], dict]]
"""(session, options) -> (rows, lineage): rows are JSON-able dicts in a deterministic order."""

BUILDERS: dict[str, Builder] = {}


def builder(name: str):
    def register(fn: Builder) -> Builder:
        BUILDERS[name] = fn
        return fn

    return register


def _status_filter(column, options: SnapshotOptions):
    return column.in_(("approved", "pending")) if options.include_pending else column == "approved"


@builder("prompts")
def build_prompts(session: Session, options: SnapshotOptions) -> tuple[list[dict], dict]:
    prompts = session.scalars(select(Prompt).order_by(Prompt.id)).all()
    rows = [{"prompt_id": p.external_id, "messages": p.messages, "tags": list(p.tags), "split": p.split} for p in prompts]
    return rows, {"source": "prompts", "row_ids": [p.id for p in prompts], "filter": "all prompts"}


@builder("sft")
def build_sft(session: Session, options: SnapshotOptions) -> tuple[list[dict], dict]:
    """Demonstrations in trl's conversational prompt/completion shape (loss on the answer only)."""
    q = (select(Demonstration, Prompt, User.name)
         .join(Prompt, Demonstration.prompt_id == Prompt.id)
         .outerjoin(User, Demonstration.annotator_id == User.id)
         .where(_status_filter(Demonstration.status, options))
         .order_by(Demonstration.id))
    if not options.include_simulated:
        q = q.where(Demonstration.origin != "simulated")
    rows, ids = [], []
    for d, p, annotator in session.execute(q).all():
        rows.append({
            "prompt_id": p.external_id,
            "prompt": d.messages[:-1],
            "completion": d.messages[-1:],
            "tags": list(p.tags),
            "split": p.split,
            "demonstration_id": d.id,
            "annotator": annotator or "",
        })
        ids.append(d.id)
    filt = "approved demonstrations" + (" + pending" if options.include_pending else "")
    return rows, {"source": "demonstrations", "row_ids": ids, "filter": filt}


def builders() -> dict[str, Builder]:
    from rlhf.data import pairs  # noqa: F401  (registers "preferences"

    return BUILDERS


def parse_ref(ref: str) -> tuple[str, int | None]:
    """`NAME@vN` -> (NAME, N); `NAME@latest` or `NAME` -> (NAME, None)."""
    m = REF.match(ref.strip())
    if not m:
        raise NotFoundError(f"{ref!r} is not a version reference: expected NAME@vN or NAME@latest")
    return m["name"], int(m["version"]) if m["version"] else None


def _rows_hash(rows: list[dict]) -> str:
    return content_hash(rows)


def snapshot(session: Session, name: str, options: SnapshotOptions = SnapshotOptions()) -> tuple[DatasetVersion, bool]:
    """Freeze the store's current `name` rows. Returns (version, created); unchanged content returns the existing one."""
    import datasets

    table = builders()
    if name not in table:
        raise NotFoundError(f"unknown dataset {name!r}: expected one of {', '.join(sorted(table))}")
    rows, lineage = table[name](session, options)
    if not rows:
        raise RlhfError(f"nothing to snapshot for {name!r} ({lineage.get('filter', '')}): "
                        "import or approve data first, or pass --include-pending")
    ds = datasets.Dataset.from_list(rows)
    digest = _rows_hash(ds.to_list())  # hash what Arrow stores, so loading re-hashes to the same value
    existing = session.scalar(select(DatasetVersion).where(DatasetVersion.name == name, DatasetVersion.content_hash == digest)
                              .order_by(DatasetVersion.version.desc()))
    if existing is not None:
        return existing, False

    version = (session.scalar(select(func.max(DatasetVersion.version)).where(DatasetVersion.name == name)) or 0) + 1
    root = paths.registry_dir() / name
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"v{version}"
    tmp = root / f".tmp-{uuid.uuid4().hex}"
    lineage = {**lineage, "options": asdict(options), "time": utcnow().isoformat() + "Z", "code_version": paths.code_version()}
    dv = DatasetVersion(name=name, version=version, content_hash=digest, row_count=len(rows), path=str(final),
                        lineage=lineage, code_version=paths.code_version())
    try:
        datasets.disable_progress_bars()
        ds.save_to_disk(str(tmp))
        datasets.enable_progress_bars()
        manifest = {"name": name, "version": version, "content_hash": digest, "row_count": len(rows), "lineage": lineage}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        session.add(dv)
        session.flush()  # claims (name, version); a concurrent snapshot fails here, before anything is visible
        if final.exists():  # left by a crash after the rename but before the commit: not a registered version
            shutil.move(str(final), str(root / f".orphan-{uuid.uuid4().hex}"))
        os.rename(tmp, final)  # atomic on one filesystem: the version appears whole or not at all
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    session.info.setdefault("on_rollback_remove", []).append(str(final))
    return dv, True


def get_version(session: Session, ref: str, kind: str | None = None) -> DatasetVersion:
    name, version = parse_ref(ref)
    if kind and name != kind:
        raise NotFoundError(f"{ref}: expected a {kind!r} dataset")
    q = select(DatasetVersion).where(DatasetVersion.name == name)
    q = q.where(DatasetVersion.version == version) if version else q.order_by(DatasetVersion.version.desc())
    dv = session.scalars(q).first()
    if dv is None:
        known = session.scalars(select(DatasetVersion).where(DatasetVersion.name == name).order_by(DatasetVersion.version)).all()
        hint = f"known: {', '.join(v.ref for v in known)}" if known else f"no versions of {name!r} yet: run `rlhf registry snapshot {name}`"
        raise NotFoundError(f"unknown dataset version {ref}; {hint}")
    return dv


def load(session: Session, ref: str, kind: str | None = None):
    """The `datasets.Dataset` of `ref`, after checking its content hash against the registry."""
    import datasets

    dv = get_version(session, ref, kind)
    path = Path(dv.path)
    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:  # missing folder, deleted or corrupted Arrow files
        raise IntegrityError(f"{dv.ref}: snapshot at {path} cannot be read ({type(e).__name__}: {e}); it was moved or damaged") from None
    if _rows_hash(ds.to_list()) != dv.content_hash:
        raise IntegrityError(f"{dv.ref}: content hash mismatch at {path}: the snapshot was modified after it was registered")
    return ds


def describe(dv: DatasetVersion) -> dict:
    return {"ref": dv.ref, "rows": dv.row_count, "content_hash": dv.content_hash, "path": dv.path,
            "created_at": dv.created_at.isoformat() + "Z", "code_version": dv.code_version, "lineage": dv.lineage}
