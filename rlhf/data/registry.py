"""The registry: immutable, content-hashed dataset snapshots and trained model versions, and the
one resolver of references to them.

A dataset version lives at `RLHF_HOME/registry/NAME/vN/` (Arrow files + manifest.json) and as a
`dataset_versions` row with its lineage. It is written to a temporary folder and renamed into
place (`rlhf.fs.atomic_dir`), so a crash never leaves a half version. Snapshotting unchanged
content returns the existing version. Loading re-hashes the rows: a tampered snapshot is an
IntegrityError. What each dataset holds is built in `rlhf.data.snapshots`.

Two snapshots of the same content at once (two `rlhf registry snapshot` processes) give one
version: the version row is claimed with INSERT ... ON CONFLICT DO NOTHING before the folder is
renamed into place, and the one that loses the claim returns the winner's version.

A model version is a `model_versions` row `NAME@vN` with its base, data, config, seed and metrics;
its weights are a folder the training stage wrote. Registration hashes the folder's files
(`hash_model_files`) into the row; `verify_model` re-hashes them on load and names the file that
was swapped, changed or removed. `pin_model` turns any model reference into the exact one a run
records.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rlhf import fs, paths
from rlhf.data.formats import REGISTRY_NAME_CHARS, content_hash
from rlhf.data.snapshots import BUILDERS, SnapshotOptions  # noqa: F401  (SnapshotOptions: part of this API)
from rlhf.data.store.db import insert_new
from rlhf.data.store.models import DatasetVersion, ModelVersion, utcnow
from rlhf.errors import IntegrityError, NotFoundError, RlhfError

REF = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)(?:@(?:v(?P<version>\d+)|(?P<latest>latest)))?$")
BUILTIN = "smollm2-135m-instruct"  # the built-in model's canonical name (rlhf.train.modeling loads it)
BUILTIN_ALIASES = (BUILTIN, "builtin")


def parse_ref(ref: str) -> tuple[str, int | None]:
    """`NAME@vN` -> (NAME, N); `NAME@latest` or `NAME` -> (NAME, None).

    >>> parse_ref("sft@v3"), parse_ref("sft@latest")
    (('sft', 3), ('sft', None))
    """
    m = REF.match(ref.strip())
    if not m:
        raise NotFoundError(f"{ref!r} is not a version reference: expected NAME@vN or NAME@latest")
    return m["name"], int(m["version"]) if m["version"] else None


def _lookup(session: Session, table, ref: str, what: str, none_yet: str):
    """The row of `table` (DatasetVersion or ModelVersion) that `NAME@vN` / `NAME@latest` names, else a
    NotFoundError listing the versions that exist (or `none_yet` when there are none)."""
    name, version = parse_ref(ref)
    q = select(table).where(table.name == name)
    q = q.where(table.version == version) if version else q.order_by(table.version.desc())
    row = session.scalars(q).first()
    if row is None:
        known = session.scalars(select(table).where(table.name == name).order_by(table.version)).all()
        hint = f"known: {', '.join(v.ref for v in known)}" if known else none_yet
        raise NotFoundError(f"unknown {what} version {ref}; {hint}")
    return row


def _next(session: Session, table, name: str) -> int:
    return (session.scalar(select(func.max(table.version)).where(table.name == name)) or 0) + 1


def check_registry_name(name: str, what: str = "model") -> str:
    """A dataset or model name as a reference spells it: letters, digits, '_', '.', '-', at most REGISTRY_NAME_CHARS,
    not starting with '.' (the name is a folder in the registry: '.', '..' and hidden folders are refused).

    >>> check_registry_name("sft-small")
    'sft-small'
    """
    if (not isinstance(name, str) or not REF.match(name) or "@" in name or name.startswith(".")
            or len(name) > REGISTRY_NAME_CHARS):
        raise RlhfError(f"{what} name {str(name)[:80]!r}: use 1-{REGISTRY_NAME_CHARS} letters, digits, '_', '.' or '-', "
                        f"not starting with '.' (it becomes NAME@vN)")
    return name


class _VersionTaken(Exception):
    """A concurrent snapshot claimed this version number first (raised inside the atomic write: nothing lands)."""


# --- datasets -----------------------------------------------------------------------------------


def snapshot(session: Session, name: str, options: SnapshotOptions = SnapshotOptions()) -> tuple[DatasetVersion, bool]:
    """Freeze the store's current `name` rows. Returns (version, created); unchanged content returns the existing one."""
    import datasets

    if name not in BUILDERS:
        raise NotFoundError(f"unknown dataset {name!r}: expected one of {', '.join(sorted(BUILDERS))}")
    rows, lineage = BUILDERS[name](session, options)
    if not rows:
        raise RlhfError(f"nothing to snapshot for {name!r} ({lineage.get('filter', '')}): "
                        "import or approve data first, or pass --include-pending")
    ds = datasets.Dataset.from_list(rows)
    digest = content_hash(ds.to_list())  # hash what Arrow stores, so loading re-hashes to the same value

    def same_content(but: int | None = None) -> DatasetVersion | None:
        q = select(DatasetVersion).where(DatasetVersion.name == name, DatasetVersion.content_hash == digest)
        return session.scalar((q.where(DatasetVersion.id != but) if but else q).order_by(DatasetVersion.version.desc()))

    if (existing := same_content()) is not None:
        return existing, False
    lineage = {**lineage, "options": asdict(options), "time": utcnow().isoformat() + "Z", "code_version": paths.code_version()}
    while True:
        version = _next(session, DatasetVersion, name)
        final = paths.registry_dir() / name / f"v{version}"
        claimed: list[DatasetVersion] = []

        def write(tmp: Path) -> None:
            datasets.disable_progress_bars()
            ds.save_to_disk(str(tmp))
            datasets.enable_progress_bars()
            manifest = {"name": name, "version": version, "content_hash": digest, "row_count": len(rows), "lineage": lineage}
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
            # claim (name, version) before the folder is renamed into place; a concurrent snapshot holding the
            # claim makes this wait for its commit, then answers None: nothing of ours lands
            dv = insert_new(session, DatasetVersion, dict(
                name=name, version=version, content_hash=digest, row_count=len(rows), path=str(final),
                lineage=lineage, code_version=lineage["code_version"]))
            if dv is None:
                raise _VersionTaken()
            # with the claim held, a concurrent snapshot's commit is visible: did it freeze this content meanwhile?
            if same_content(but=dv.id) is not None:
                session.delete(dv)
                session.flush()
                raise _VersionTaken()
            claimed.append(dv)

        try:
            fs.atomic_dir(final, write)  # a folder left by a crash after the rename but before the commit is moved aside
        except _VersionTaken:
            if (existing := same_content()) is not None:  # the concurrent snapshot froze the same content
                return existing, False
            continue  # it froze other content under this number: take the next one
        session.info.setdefault("on_rollback_remove", []).append(str(final))
        return claimed[0], True


def get_version(session: Session, ref: str, kind: str | None = None) -> DatasetVersion:
    """The dataset version `NAME@vN` or `NAME@latest` names; `kind` checks the dataset's name."""
    name, _ = parse_ref(ref)
    if kind and name != kind:
        raise NotFoundError(f"{ref}: expected a {kind!r} dataset")
    return _lookup(session, DatasetVersion, ref, "dataset", f"no versions of {name!r} yet: run `rlhf registry snapshot {name}`")


def load(session: Session, ref: str, kind: str | None = None):
    """The `datasets.Dataset` of `ref`, after checking its content hash against the registry."""
    import datasets

    dv = get_version(session, ref, kind)
    path = Path(dv.path)
    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:  # missing folder, deleted or corrupted Arrow files
        raise IntegrityError(f"{dv.ref}: snapshot at {path} cannot be read ({type(e).__name__}: {e}); it was moved or damaged") from None
    if content_hash(ds.to_list()) != dv.content_hash:
        raise IntegrityError(f"{dv.ref}: content hash mismatch at {path}: the snapshot was modified after it was registered")
    return ds


def describe(dv: DatasetVersion) -> dict:
    return {"ref": dv.ref, "rows": dv.row_count, "content_hash": dv.content_hash, "path": dv.path,
            "created_at": dv.created_at.isoformat() + "Z", "code_version": dv.code_version, "lineage": dv.lineage}


# --- models -------------------------------------------------------------------------------------


def next_version(session: Session, name: str) -> int:
    return _next(session, ModelVersion, name)


def register_model(session: Session, *, name: str, stage: str, base: str, path: str, dataset_versions: list[str],
                   config: dict, metrics: dict, seed: int, version: int | None = None,
                   hashed_from: Path | None = None) -> ModelVersion:
    """Record the model folder at `path` as `name@vN` with the sha256 of its files (re-checked by `verify_model`).

    `hashed_from`: where the files are now, when they reach `path` only after the registration (a
    save that claims its version inside `fs.atomic_dir`, before the rename). A version number a
    concurrent run registered first is a one-line RlhfError naming it; nothing of the caller's
    transaction is lost to a raw unique-key error."""
    check_registry_name(name)
    files = hash_model_files(Path(hashed_from or path))
    version = version or next_version(session, name)
    mv = insert_new(session, ModelVersion, dict(
        name=name, version=version, stage=stage, base=base, path=str(path), dataset_versions=dataset_versions,
        config=config, metrics=metrics, seed=seed, code_version=paths.code_version(),
        content_hash=folder_hash(files), file_hashes=files))
    if mv is None:
        raise RlhfError(f"{name}@v{version} was registered by another run at the same time; the weights at {path} "
                        f"are kept: register them again under the next version")
    return mv


UNHASHED_SUFFIXES = (".md", ".png")
"""documentation written beside the weights (the model card, its plots): not part of what loads, not hashed"""


def hash_model_files(folder: Path) -> dict[str, str]:
    """{relative path: sha256 of its bytes} of every file under `folder` (links followed), sorted by path."""
    if not folder.is_dir():
        raise NotFoundError(f"model folder {folder} does not exist")
    out = {}
    for f in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(UNHASHED_SUFFIXES)):
        h = hashlib.sha256()
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        out[f.relative_to(folder).as_posix()] = h.hexdigest()
    return out


def folder_hash(files: dict[str, str]) -> str:
    """One sha256 over the sorted relative paths and their files' sha256 (the bytes, through their digests)."""
    h = hashlib.sha256()
    for rel in sorted(files):
        h.update(rel.encode("utf-8") + b"\0" + files[rel].encode("ascii") + b"\n")
    return h.hexdigest()


def verify_model(mv: ModelVersion) -> str:
    """Re-hash a registered model's folder against its row: a one-line status, or an IntegrityError naming
    `NAME@vN` and the file that was swapped, changed or removed (or the folder that is gone).

    Versions registered before hashes were recorded still load: "no hash recorded"."""
    if not mv.content_hash or mv.file_hashes is None:
        return f"{mv.ref}: no hash recorded (registered before model hashes); its files are not verified"
    folder = Path(mv.path)
    if not folder.is_dir():
        raise IntegrityError(f"{mv.ref}: model folder {folder} is missing: it was moved or deleted after registration")
    now = hash_model_files(folder)
    for rel, digest in mv.file_hashes.items():
        if rel not in now:
            raise IntegrityError(f"{mv.ref}: {folder / rel} is missing: it was removed after registration")
        if now[rel] != digest:
            raise IntegrityError(f"{mv.ref}: {folder / rel} changed after registration (sha256 {now[rel][:12]}, "
                                 f"registered {digest[:12]}): the weights were swapped or modified")
    for rel in sorted(set(now) - set(mv.file_hashes)):
        raise IntegrityError(f"{mv.ref}: {folder / rel} was added after registration: remove it or register the "
                             "folder as a new version")
    return f"{mv.ref}: verified ({len(now)} files, sha256 {mv.content_hash[:12]})"


def get_model_version(session: Session, ref: str) -> ModelVersion:
    """The model version `NAME@vN` or `NAME@latest` names."""
    name, _ = parse_ref(ref)
    return _lookup(session, ModelVersion, ref, "model", f"no {name!r} models registered yet")


def pin_model(session: Session, spec: str, strict: bool = True) -> str:
    """The exact model a reference means now, as runs, responses and reports record it.

    The built-in name (or "builtin") -> the canonical built-in name; an existing folder, `rubric:NAME`
    or anything else without "@" -> as given (loading it says what is wrong); `NAME@latest` or `NAME@vN`
    -> the registered `NAME@vN`. An unknown registered name is a NotFoundError, unless not `strict`
    (answers made elsewhere): then it is kept as given.
    """
    if spec in BUILTIN_ALIASES:
        return BUILTIN
    if "@" not in spec or spec.startswith("rubric:") or Path(spec).expanduser().exists():
        return spec
    try:
        return get_model_version(session, spec).ref
    except NotFoundError:
        if strict:
            raise
        return spec
