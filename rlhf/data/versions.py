"""The model registry: every trained model is a `NAME@vN` row with base, data, config, seed and metrics."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rlhf import paths
from rlhf.errors import NotFoundError
from rlhf.data.registry import parse_ref
from rlhf.data.store.models import ModelVersion


def next_version(session: Session, name: str) -> int:
    return (session.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.name == name)) or 0) + 1


def register_model(session: Session, *, name: str, stage: str, base: str, path: str, dataset_versions: list[str],
                   config: dict, metrics: dict, seed: int, version: int | None = None) -> ModelVersion:
    mv = ModelVersion(name=name, version=version or next_version(session, name), stage=stage, base=base, path=str(path),
                      dataset_versions=dataset_versions, config=config, metrics=metrics, seed=seed,
                      code_version=paths.code_version())
    session.add(mv)
    session.flush()
    return mv


def get_model_version(session: Session, ref: str) -> ModelVersion:
    name, version = parse_ref(ref)
    q = select(ModelVersion).where(ModelVersion.name == name)
    q = q.where(ModelVersion.version == version) if version else q.order_by(ModelVersion.version.desc())
    mv = session.scalars(q).first()
    if mv is None:
        known = session.scalars(select(ModelVersion).where(ModelVersion.name == name).order_by(ModelVersion.version)).all()
        hint = f"known: {', '.join(m.ref for m in known)}" if known else f"no {name!r} models registered yet"
        raise NotFoundError(f"unknown model version {ref}; {hint}")
    return mv
