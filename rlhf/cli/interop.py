"""`rlhf export` (a dataset version for the Hugging Face ecosystem), `rlhf import dataset|label-studio|argilla`
(data from the tools teams use now), `rlhf models show|export` (model cards, plain Hugging Face folders)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rlhf.cli import app
from rlhf.cli.data import ApproveOpt, import_app, models_app

PromptFieldOpt = Annotated[str | None, typer.Option("--prompt-field", help="the record field holding the prompt "
                                                    "(default: the first of prompt, instruction, question, input, text, chat, messages)")]


@app.command("export")
def export(ref: Annotated[str, typer.Argument(help="dataset version NAME@vN (or NAME@latest)")],
           dest: Annotated[Path, typer.Argument(help="a new folder: the data file(s) and README.md (the dataset card)")],
           format: Annotated[str, typer.Option("--format", help="jsonl | parquet | hf (a datasets save_to_disk folder)")] = "jsonl",
           shape: Annotated[str, typer.Option(help="trl shape: auto (prompts: prompt; sft: prompt/completion; preferences: "
                                                   "prompt/chosen/rejected) | messages (sft as one conversation)")] = "auto"):
    """A dataset version in trl's shapes as JSONL, Parquet or a datasets folder, with a dataset card."""
    from rlhf.data.export import export_version
    from rlhf.data.store import session_scope

    with session_scope() as s:
        report = export_version(s, ref, format, dest, shape)
    typer.echo(str(report))


def _import_foreign(source: str, path: Path, approved_by: str | None, **options) -> None:
    from rlhf.data.ingest import import_foreign
    from rlhf.data.store import session_scope

    with session_scope() as s:
        report = import_foreign(s, source, path, approved_by, **options)
    typer.echo(str(report))


@import_app.command("dataset")
def import_dataset(path: Annotated[Path, typer.Argument(help="JSONL, JSON, Parquet, or a datasets save_to_disk folder (an `rlhf export` folder too)")],
                   approved_by: ApproveOpt = None):
    """A dataset in trl's shapes: prompts, prompt + completion or messages, chosen/rejected pairs (public preference sets)."""
    _import_foreign("dataset", path, approved_by)


@import_app.command("label-studio")
def import_label_studio(file: Annotated[Path, typer.Argument(help="the project's JSON export (tasks with annotations)")],
                        approved_by: ApproveOpt = None, prompt_field: PromptFieldOpt = None):
    """Label Studio JSON export: pairwise and ranker results -> rankings, textarea answers -> demonstrations."""
    _import_foreign("label-studio", file, approved_by, prompt_field=prompt_field)


@import_app.command("argilla")
def import_argilla(path: Annotated[Path, typer.Argument(help="dataset.to_disk folder, or a records.to_json file")],
                   approved_by: ApproveOpt = None, prompt_field: PromptFieldOpt = None):
    """Argilla 2.x export: RankingQuestion responses -> rankings, TextQuestion responses -> demonstrations."""
    _import_foreign("argilla", path, approved_by, prompt_field=prompt_field)


@models_app.command("show")
def models_show(ref: Annotated[str, typer.Argument(help="model version NAME@vN (or NAME@latest)")]):
    """The model card of NAME@vN: base, datasets, config, seed, code version, metrics, plots."""
    from rlhf.data import registry
    from rlhf.data.store import session_scope
    from rlhf.train.cards import show_card

    with session_scope() as s:
        card = show_card(registry.get_model_version(s, ref))
    typer.echo(card)


@models_app.command("export")
def models_export(ref: Annotated[str, typer.Argument(help="model version NAME@vN (or NAME@latest)")],
                  dest: Annotated[Path, typer.Argument(help="a new folder: a plain Hugging Face model folder with its card")],
                  merge: Annotated[bool, typer.Option("--merge/--adapter", help="a LoRA adapter (qlora versions) merged into "
                                                      "full weights, or kept as an adapter")] = True):
    """NAME@vN as a plain Hugging Face folder that transformers loads (AutoModelForCausalLM; a reward model: ...ForSequenceClassification)."""
    from rlhf.data import registry
    from rlhf.data.store import session_scope
    from rlhf.train.cards import export_model

    with session_scope() as s:
        mv = registry.get_model_version(s, ref)
        s.expunge(mv)
    out = export_model(mv, dest, merge)
    typer.echo(f"{mv.ref} -> {out}")
