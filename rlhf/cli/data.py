"""`rlhf import`, `rlhf registry`, `rlhf models`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import select

from rlhf.cli import app
from rlhf.errors import RlhfError

import_app = typer.Typer(help="Import JSONL files (all-or-nothing; exact duplicates skipped).", no_args_is_help=True)
registry_app = typer.Typer(help="Dataset snapshots: immutable, content-hashed, versioned.", no_args_is_help=True)
models_app = typer.Typer(help="The built-in model and registered model versions.", no_args_is_help=True)
app.add_typer(import_app, name="import")
app.add_typer(registry_app, name="registry")
app.add_typer(models_app, name="models")

ApproveOpt = Annotated[str | None, typer.Option("--approved-by", help="mark imported items approved by this reviewer (e.g. data you wrote and checked)")]


def _import(kind: str, file: Path, approved_by: str | None = None) -> None:
    from rlhf.data.store import session_scope
    from rlhf.data.ingest import IMPORTERS

    with session_scope() as s:
        fn = IMPORTERS[kind]
        report = fn(s, file) if kind == "prompts" else fn(s, file, approved_by=approved_by)
    typer.echo(str(report))


@import_app.command("prompts")
def import_prompts(file: Path):
    """Prompts: {"id", "messages", ["tags"]}; tag "heldout" puts a prompt in the held-out split."""
    _import("prompts", file)


@import_app.command("demonstrations")
def import_demonstrations(file: Path, approved_by: ApproveOpt = None):
    """Demonstrations: {"prompt_id", "messages": [..., {"role": "assistant", ...}], ["annotator"]}."""
    _import("demonstrations", file, approved_by)


@import_app.command("rankings")
def import_rankings(file: Path, approved_by: ApproveOpt = None):
    """Rankings: {"prompt_id", "responses", "order" (best first, ties as inner lists), ["all_bad"], ["annotator"], ["reason"]}."""
    _import("rankings", file, approved_by)


@registry_app.command("snapshot")
def snapshot(name: str,
             include_pending: Annotated[bool, typer.Option(help="also take items not yet approved by an expert")] = False,
             include_simulated: Annotated[bool, typer.Option(help="also take simulated rankings")] = False):
    """Freeze NAME (prompts, sft, preferences) from the store; prints NAME@vN."""
    from rlhf.data import registry
    from rlhf.data.store import session_scope

    with session_scope() as s:
        dv, created = registry.snapshot(s, name, registry.SnapshotOptions(include_pending, include_simulated))
        ref, rows = dv.ref, dv.row_count
    typer.echo(ref)
    typer.echo(f"{'new version' if created else 'unchanged content: existing version'}, {rows} rows", err=True)


@registry_app.command("list")
def registry_list():
    """Every dataset version, newest first."""
    from rlhf.data.store import session_scope
    from rlhf.data.store.models import DatasetVersion

    with session_scope() as s:
        versions = s.scalars(select(DatasetVersion).order_by(DatasetVersion.name, DatasetVersion.version.desc())).all()
        if not versions:
            typer.echo("no dataset versions yet: rlhf registry snapshot prompts|sft|preferences")
        for v in versions:
            typer.echo(f"{v.ref:<20} {v.row_count:>7} rows  {v.content_hash[:12]}  {v.created_at:%Y-%m-%d %H:%M}  {v.lineage.get('filter', '')}")


@registry_app.command("show")
def registry_show(ref: str, verify: Annotated[bool, typer.Option(help="re-hash the stored rows")] = True):
    """Row count, content hash and lineage of NAME@vN (or NAME@latest)."""
    from rlhf.data import registry
    from rlhf.data.store import session_scope

    with session_scope() as s:
        dv = registry.get_version(s, ref)
        info = registry.describe(dv)
        if verify:
            registry.load(s, dv.ref)
            info["verified"] = True
    ids = info["lineage"].get("row_ids", [])
    if len(ids) > 20:
        info["lineage"]["row_ids"] = ids[:20] + [f"... {len(ids) - 20} more"]
    typer.echo(json.dumps(info, indent=1))


@models_app.command("list")
def models_list():
    """The built-in model(s) and every registered model version."""
    from rlhf.train import modeling
    from rlhf.data.store import session_scope
    from rlhf.data.store.models import ModelVersion

    try:
        gguf = modeling.builtin_gguf()
        cached = (modeling.paths.models_dir() / modeling.BUILTIN / "config.json").exists()
        typer.echo(f"{modeling.BUILTIN:<24} built-in  {gguf}{'  (safetensors cached)' if cached else ''}")
    except RlhfError as e:
        typer.echo(f"{modeling.BUILTIN:<24} built-in  unavailable: {e}")
    with session_scope() as s:
        for mv in s.scalars(select(ModelVersion).order_by(ModelVersion.name, ModelVersion.version)).all():
            metrics = ", ".join(f"{k}={v:.4g}" for k, v in list(mv.metrics.items())[:4] if isinstance(v, (int, float)))
            typer.echo(f"{mv.ref:<24} {mv.stage:<8} base={mv.base}  data={','.join(mv.dataset_versions)}  {metrics}")
