"""A registry version for the Hugging Face ecosystem: JSONL, Parquet or a `save_to_disk` folder in trl's own
shapes, with a dataset card (`rlhf export NAME@vN --format jsonl|parquet|hf DEST`).

Shapes (trl's dataset types, conversational):

- `prompts`      -> prompt-only: `prompt` (the messages, the user's last), as trl's online trainers take
- `sft`          -> prompt/completion: `prompt`, `completion` (trl computes the loss on the completion only);
                    `shape="messages"`: one `messages` conversation per row (trl's language-modelling type)
- `preferences`  -> preference with an explicit prompt: `prompt`, `chosen`, `rejected`

Every row keeps its `prompt_id`, `tags`, `split` ("heldout" or "train") and who made it (`annotator`; a
preference's `origin`), plus the id of the source row (`demonstration_id`, `ranking_id`). trl ignores the
extra columns; `ranking_id` lets an import put a K-way ranking back together from its pairs.

DEST is a new folder: `data.jsonl`, `data.parquet` or the `save_to_disk` files, plus `README.md` (the card:
source version, row counts, lineage; the license is left for the team to fill in). It is written whole or
not at all (`rlhf.fs.atomic_dir`).

Round trip (the guarantee): `content_digest` hashes the rows as the registry holds them without the
source row ids (ids are local to a store). Importing the export (`rlhf import dataset DEST --approved-by
NAME`) into a workspace that holds none of these rows and snapshotting the same dataset with the source
version's options (`--include-simulated` when its lineage says so) gives a version with the same
content digest, printed on the card. Exact duplicate rankings (same prompt, answers, order and
annotator), which every import skips and counts, come back once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session

from rlhf import fs
from rlhf.data import registry
from rlhf.data.formats import content_hash
from rlhf.errors import RlhfError

FORMATS = ("jsonl", "parquet", "hf")
ROW_ID_COLUMNS = ("demonstration_id", "ranking_id")
"""source row ids: local to a store, so left out of the content digest"""
SHAPES = {
    "prompts": ("prompt",),
    "sft": ("prompt-completion", "messages"),
    "preferences": ("preference",),
}
"""the trl shapes each dataset exports to; the first is the default"""
TRL_COLUMNS = {"prompt": ["prompt"], "prompt-completion": ["prompt", "completion"], "messages": ["messages"],
               "preference": ["prompt", "chosen", "rejected"]}
DATA_FILES = {"jsonl": "data.jsonl", "parquet": "data.parquet"}


@dataclass
class ExportReport:
    ref: str
    dest: Path
    fmt: str
    shape: str
    rows: int
    digest: str
    splits: dict = field(default_factory=dict)

    def __str__(self) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in self.splits.items())
        return (f"{self.ref} -> {self.dest} ({self.fmt}, trl shape {self.shape}: {', '.join(TRL_COLUMNS[self.shape])}): "
                f"{self.rows} rows ({counts}); content digest {self.digest[:16]}")


def content_digest(rows: list[dict]) -> str:
    """sha256 of the rows as the registry holds them, without the source row ids: what a round trip keeps.

    >>> a = [{"prompt_id": "p1", "ranking_id": 7}]
    >>> content_digest(a) == content_digest([{"prompt_id": "p1", "ranking_id": 1}])
    True
    """
    return content_hash([{k: v for k, v in r.items() if k not in ROW_ID_COLUMNS} for r in rows])


def shaped(rows: list[dict], shape: str) -> list[dict]:
    """Snapshot rows in trl `shape`: the trl columns first, then the others as the registry holds them."""
    if shape == "prompt":
        rows = [{"prompt": r["messages"], **r} for r in rows]
    elif shape == "messages":
        rows = [{"messages": r["prompt"] + r["completion"], **r} for r in rows]
    first = TRL_COLUMNS[shape]
    dropped = {"prompt": ("messages",), "messages": ("prompt", "completion")}.get(shape, ())
    return [{**{c: r[c] for c in first}, **{k: v for k, v in r.items() if k not in first and k not in dropped}} for r in rows]


def resolve_shape(name: str, shape: str) -> str:
    shapes = SHAPES.get(name)
    if shapes is None:
        raise RlhfError(f"{name}: no trl shape to export to; expected a {', '.join(SHAPES)} version")
    if shape == "auto":
        return shapes[0]
    if shape not in shapes:
        raise RlhfError(f"--shape {shape}: a {name} version exports as {' or '.join(shapes)}")
    return shape


def export_version(session: Session, ref: str, fmt: str, dest: str | Path, shape: str = "auto") -> ExportReport:
    """Write `ref` (checked against its content hash) to the new folder `dest` in `fmt`, with its dataset card."""
    import datasets

    if fmt not in FORMATS:
        raise RlhfError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise RlhfError(f"{dest} already exists: export to a new folder (nothing was written)")
    dv = registry.get_version(session, ref)
    shape = resolve_shape(dv.name, shape)
    rows = registry.load(session, dv.ref).to_list()
    out = shaped(rows, shape)
    splits: dict[str, int] = {}
    for r in rows:
        splits[r.get("split", "train")] = splits.get(r.get("split", "train"), 0) + 1
    report = ExportReport(dv.ref, dest, fmt, shape, len(rows), content_digest(rows), splits)

    def write(tmp: Path) -> None:
        if fmt == "jsonl":
            with open(tmp / DATA_FILES[fmt], "w", encoding="utf-8") as fh:
                for r in out:
                    fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        else:
            datasets.disable_progress_bars()
            try:
                ds = datasets.Dataset.from_list(out)
                ds.to_parquet(str(tmp / DATA_FILES[fmt])) if fmt == "parquet" else ds.save_to_disk(str(tmp))
            finally:
                datasets.enable_progress_bars()
        (tmp / "README.md").write_text(dataset_card(dv, report), encoding="utf-8")

    if dest.is_dir():
        dest.rmdir()  # an empty folder the user made for it
    fs.atomic_dir(dest, write)
    return report


def dataset_card(dv, report: ExportReport) -> str:
    """The README.md of an export: where it came from, what it holds, how to load, train on and import it."""
    lineage = dict(dv.lineage)
    ids = lineage.pop("row_ids", [])
    all_bad = lineage.pop("all_bad_ranking_ids", None)
    cols = TRL_COLUMNS[report.shape]
    if report.fmt == "hf":
        load = f'datasets.load_from_disk("{report.dest.name}")'
        front = ""
    else:
        builder = "json" if report.fmt == "jsonl" else "parquet"
        load = f'datasets.load_dataset("{builder}", data_files="{report.dest.name}/{DATA_FILES[report.fmt]}", split="train")'
        front = f"configs:\n- config_name: default\n  data_files: {DATA_FILES[report.fmt]}\n"
    trainer = {"preference": "RewardTrainer or DPOTrainer", "prompt": "GRPOTrainer or RLOOTrainer"}.get(report.shape, "SFTTrainer")
    lines = [
        "---",
        "license:  # left for the team that owns this data: e.g. cc-by-4.0, apache-2.0, other",
        f"{front}tags:\n- rlhf\n- trl\n- {dv.name}",
        "---",
        f"# {dv.ref}",
        "",
        f"A `{dv.name}` dataset version exported from an RLHF service registry in trl's **{report.shape}** shape "
        f"(columns {', '.join(f'`{c}`' for c in cols)}; conversational).",
        "",
        "| | |",
        "|---|---|",
        f"| source version | `{dv.ref}` (registry content hash `{dv.content_hash}`) |",
        f"| rows | {report.rows} ({', '.join(f'{n} {s}' for s, n in report.splits.items())}) |",
        f"| content digest | `{report.digest}` (the rows without source row ids; an import + snapshot gives it back) |",
        f"| format | {report.fmt} |",
        f"| made | {dv.created_at:%Y-%m-%d %H:%M} UTC by code `{dv.code_version}` |",
        "| license | not set: fill in the `license` field above |",
        "",
        "## Lineage",
        "",
        f"- filter: {lineage.pop('filter', '')}",
        f"- source rows: {len(ids)} {lineage.pop('source', 'rows')}" + (f" ({len(all_bad)} marked all bad: no pairs)" if all_bad else ""),
        *(f"- {k}: `{json.dumps(v, ensure_ascii=False)}`" for k, v in lineage.items()),
        "",
        "Other columns: `prompt_id`, `tags`, `split` (`heldout` rows are the held-out prompts), who made a row "
        "(`annotator`, and a preference's `origin`: human or simulated) and the source row id.",
        "",
        "## Use",
        "",
        "```python",
        "import datasets",
        f"ds = {load}",
        'train = ds.filter(lambda r: r["split"] != "heldout")',
        f"# trl: {trainer}(model=..., train_dataset=train, ...)",
        "```",
        "",
        f"Import it into another workspace: `rlhf import dataset {report.dest.name} --approved-by NAME`.",
        "",
    ]
    return "\n".join(lines)
