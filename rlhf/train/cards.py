"""Model cards: README.md in a registered model's folder, and a plain Hugging Face export of a version.

    write_card(folder, model_version_row, plots)   # at registration (`stage.save_and_register`)
    show_card(model_version_row)                   # `rlhf models show NAME@vN`: the README, or one built from the row
    export_model(model_version_row, dest, merge)   # `rlhf models export NAME@vN DEST [--adapter]`

A card says what the version is (stage, base, datasets, config, seed, code version, metrics) and shows
the stage's plots (copied next to it). Versions registered before cards existed get the same card,
built from their registry row, when shown or exported.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from rlhf import fs
from rlhf.errors import RlhfError

CARD = "README.md"


def _flat(metrics: dict, prefix: str = "") -> list[tuple[str, object]]:
    """Nested metrics as (dotted name, value) rows: {"ppo": {"kl": 1}} -> [("ppo.kl", 1)]."""
    out = []
    for k, v in metrics.items():
        if isinstance(v, dict):
            out += _flat(v, f"{prefix}{k}.")
        else:
            out.append((f"{prefix}{k}", v))
    return out


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else "" if v is None else str(v)


def weights_kind(folder: Path, stage: str = "") -> tuple[str, bool]:
    """("causal-lm" | "reward", is_adapter) of a model folder, from its config.json or adapter_config.json."""
    folder = Path(folder)
    if (folder / "config.json").exists():
        arch = json.loads((folder / "config.json").read_text()).get("architectures") or []
        reward = any(a.endswith("ForSequenceClassification") for a in arch)
        return ("reward" if reward else "causal-lm"), False
    if (folder / "adapter_config.json").exists():
        task = json.loads((folder / "adapter_config.json").read_text()).get("task_type")
        return ("reward" if task == "SEQ_CLS" else "causal-lm"), True
    return ("reward" if stage == "rm" else "causal-lm"), False


def card_text(mv, plots: list[str] = (), adapter: bool | None = None) -> str:
    """The card of registry row `mv` (a ModelVersion); `plots` are PNG names in the model folder; `adapter`
    False for weights merged on export (default: what the version's folder holds)."""
    folder = Path(mv.path)
    task, is_adapter = weights_kind(folder, mv.stage)
    adapter = is_adapter if adapter is None else adapter
    cls = "AutoModelForSequenceClassification" if task == "reward" else "AutoModelForCausalLM"
    weights = "a LoRA adapter (load it with peft installed: the base is read from adapter_config.json)" if adapter else \
        "full weights (LoRA, if any, merged)"
    metrics = [(k, v) for k, v in _flat(mv.metrics or {}) if not isinstance(v, list)]
    lines = [
        "---",
        f"library_name: {'peft' if adapter else 'transformers'}",
        "license:  # left for the team: the base model's license applies to its weights",
        f"tags:\n- rlhf\n- trl\n- {mv.stage}",
        "---",
        f"# {mv.ref}",
        "",
        f"A {'reward model (a sequence classifier with one output)' if task == 'reward' else 'causal language model'} "
        f"trained by the `{mv.stage}` stage of an RLHF service; {weights}.",
        "",
        "| | |",
        "|---|---|",
        f"| base | `{mv.base}` |",
        f"| datasets | {', '.join(f'`{d}`' for d in mv.dataset_versions) or 'none'} |",
        f"| seed | {mv.seed} |",
        f"| code version | `{mv.code_version}` |",
        f"| registered | {mv.created_at:%Y-%m-%d %H:%M} UTC |" if mv.created_at else "| registered | |",
        f"| folder | `{folder}` |",
        "",
        "## Metrics",
        "",
        *(["| metric | value |", "|---|---|", *(f"| {k} | {_fmt(v)} |" for k, v in metrics)] if metrics else ["none recorded"]),
        "",
        "## Plots",
        "",
        *([f"![{Path(p).stem}]({Path(p).name})" for p in plots] or ["none saved with this version"]),
        "",
        "## Config",
        "",
        "```json",
        json.dumps(mv.config or {}, indent=1, sort_keys=True, default=str),
        "```",
        "",
        "## Load",
        "",
        "```python",
        f"from transformers import AutoTokenizer, {cls}",
        f'model = {cls}.from_pretrained("{folder.name}")',
        f'tokenizer = AutoTokenizer.from_pretrained("{folder.name}")',
        "```",
        "",
    ]
    return "\n".join(lines)


def write_card(folder: str | Path, mv, plots: list[str | Path] = ()) -> Path:
    """README.md in `folder` for registry row `mv`, with `plots` (PNG files, e.g. the run folder's) copied beside it."""
    folder = Path(folder)
    names = []
    for p in plots:
        p = Path(p)
        if p.is_file():
            if p.parent.resolve() != folder.resolve():
                shutil.copy2(p, folder / p.name)
            names.append(p.name)
    (folder / CARD).write_text(card_text(mv, names), encoding="utf-8")
    return folder / CARD


def show_card(mv) -> str:
    """The card in the version's folder, or (a version registered before cards) one built from its row."""
    folder = Path(mv.path)
    if (folder / CARD).is_file():
        return (folder / CARD).read_text(encoding="utf-8")
    return card_text(mv, sorted(p.name for p in folder.glob("*.png")))


def export_model(mv, dest: str | Path, merge: bool = True) -> Path:
    """A plain Hugging Face folder of version `mv` at the new folder `dest`, with its card.

    A folder of full weights is copied (`merge` or not: there is no adapter to keep). An adapter (a qlora
    version) is kept as an adapter, or merged into its base in full precision (`merge`) so that
    `AutoModelForCausalLM` (a reward model: `AutoModelForSequenceClassification`) loads it without peft.
    """
    from rlhf.train import modeling

    src, dest = Path(mv.path), Path(dest)
    if not src.is_dir():
        raise RlhfError(f"{mv.ref}: its folder {src} is missing; it was moved or deleted")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise RlhfError(f"{dest} already exists: export to a new folder (nothing was written)")
    task, adapter = weights_kind(src, mv.stage)
    if dest.is_dir():
        dest.rmdir()  # an empty folder the user made for it

    def write(tmp: Path) -> None:
        if adapter and merge:
            resolved = modeling.ResolvedModel(mv.ref, src, mv.ref)
            net = modeling.load_model(resolved, mode="full", task=task)  # base + adapter, merged (no 4-bit)
            net.save_pretrained(tmp)
            modeling.load_tokenizer(resolved).save_pretrained(tmp)
        else:
            shutil.copytree(src, tmp, dirs_exist_ok=True)
        plots = sorted(p.name for p in src.glob("*.png"))
        for name in plots:
            shutil.copy2(src / name, tmp / name)
        card = card_text(mv, plots, adapter=False) if adapter and merge else show_card(mv)  # as exported
        (tmp / CARD).write_text(card, encoding="utf-8")

    return fs.atomic_dir(dest, write)
