"""Importing data from the tools teams use now: datasets in trl's shapes (this project's exports, public
chosen/rejected preference sets), Label Studio and Argilla exports (`rlhf.data.annotation_tools`).

Each importer reads the whole file and turns it into checked items (a prompt, a demonstration, a ranking)
before anything is written; one bad record is an `InputError` naming FILE:LINE: FIELD and nothing is
stored. `rlhf.data.ingest.import_foreign` then writes the items through `rlhf.data.records` (the one writer
per row kind) in the caller's transaction, so exact duplicates are skipped and counted as in every import. A JSON array's LINE is the
line its record starts on; a Parquet or Arrow file's is the row number (from 1).

trl shapes read by `rlhf import dataset` (JSONL, JSON, Parquet, or a `save_to_disk` folder):

- `prompt` alone (prompt-only)                      -> prompts
- `prompt` + `completion`, or `messages` ending with the assistant -> demonstrations
- `chosen` + `rejected`, with or without `prompt`   -> rankings of two answers (a preference pair)
  (texts or conversations; a chosen/rejected conversation that repeats the prompt, as in UltraFeedback, or
  the "\\n\\nHuman: ... \\n\\nAssistant: ..." texts of Anthropic's HH sets are split into prompt and answer).
  Rows with the same `ranking_id` (this project's exports) are the pairs of one ranking and come back as it.

Optional columns: `prompt_id` (else `imported-<hash>`), `tags`, `split` ("heldout" adds the tag),
`annotator`, `origin` (human | simulated).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from rlhf.data.formats import Checker, check_order, check_prompt, read_jsonl
from rlhf.data.pairs import ranking_to_pairs
from rlhf.data.records import HELDOUT_TAG, prompt_hash
from rlhf.errors import InputError

ORIGINS = ("human", "simulated")
MODEL_VERSION = "imported"  # the model_version of imported answers (as `rlhf import rankings` stores them)

# --------------------------------------------------------------------------- items


@dataclass(frozen=True)
class PromptItem:
    id: str
    messages: list[dict]
    tags: list[str]


@dataclass(frozen=True)
class Item:
    """One checked record to write: a demonstration (`answer`) or a ranking (`responses` + `order`) of `prompt`."""

    where: str  # FILE:LINE of the record
    prompt: PromptItem
    annotator: str | None = None
    answer: str | None = None
    responses: list[str] = field(default_factory=list)
    order: list[list[int]] = field(default_factory=list)
    origin: str = "human"
    reason: str | None = None

    @property
    def kind(self) -> str:
        return "demonstrations" if self.answer is not None else "rankings" if self.responses else "prompts"


@dataclass
class InteropReport:
    """What an import wrote: per kind, rows added and exact duplicates skipped; records left out and why."""

    source: str
    file: str
    added: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)

    def count(self, kind: str, created: bool) -> None:
        bucket = self.added if created else self.duplicates
        bucket[kind] = bucket.get(kind, 0) + 1

    def __str__(self) -> str:
        kinds = [k for k in ("prompts", "demonstrations", "rankings") if k in self.added or k in self.duplicates]
        parts = [f"{self.added.get(k, 0)} {k} added ({self.duplicates.get(k, 0)} "
                 f"{'already stored' if k == 'prompts' else 'exact duplicates skipped'})" for k in kinds]
        skipped = "".join(f"; {n} {why} left out" for why, n in self.skipped.items())
        return f"{self.file} ({self.source}): {', '.join(parts)}{skipped}"


def messages(c: Checker, field_name: str, value: Any) -> list[dict]:
    """`value` checked as chat messages; errors name `field_name` at c's FILE:LINE."""
    return Checker(c.file, c.line, {field_name: value}).messages(field_name)


def prompt_item(c: Checker, value: Any, field_name: str, pid: Any = None, tags: Any = None) -> PromptItem:
    """A prompt from a text or a list of messages (the user's last); its id is `pid` or `imported-<content hash>`."""
    msgs = [{"role": "user", "content": c.text(field_name, value)}] if isinstance(value, str) else messages(c, field_name, value)
    if msgs[-1]["role"] != "user":
        c.fail(f"{field_name}[{len(msgs) - 1}].role", "the last message of a prompt must be the user's")
    tags = list(tags or [])
    if c.obj.get("split") == HELDOUT_TAG and HELDOUT_TAG not in tags:
        tags.append(HELDOUT_TAG)
    pid = pid if pid not in (None, "") else f"imported-{prompt_hash(msgs)[:12]}"
    rec = check_prompt(c.file, c.line, {"id": pid, "messages": msgs, "tags": tags})
    return PromptItem(rec["id"], rec["messages"], rec["tags"])


def ranking_item(c: Checker, prompt: PromptItem, responses: list, order: list, annotator: str | None,
                 fields: list[str], **kw) -> Item:
    """A ranking of `responses` (named by `fields` in errors), best first by `order`."""
    texts = [c.text(f, t) for f, t in zip(fields, responses)]
    if len(texts) < 2:
        c.fail(fields[0] if fields else "responses", f"a ranking needs at least 2 answers, got {len(texts)}")
    if len(set(texts)) != len(texts):
        c.fail(fields[-1], "two answers have the same text")
    return Item(f"{c.file}:{c.line}", prompt, annotator, responses=texts, order=check_order(c, order, len(texts)), **kw)


# --------------------------------------------------------------------------- reading files


def json_records(path: Path, what: str = "a JSON array of records") -> Iterator[tuple[int, Any]]:
    """(line, element) of a JSON array (`what` the file should be), the line being where each element starts;
    bad JSON is an InputError."""
    if not path.is_file():
        raise InputError(str(path), None, None, "no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InputError(str(path), None, None, f"invalid UTF-8 at byte {e.start}") from None
    decoder = json.JSONDecoder()
    pos = len(text) - len(text.lstrip())
    if not text[pos:pos + 1] == "[":
        raise InputError(str(path), 1, None, f"expected {what}")
    pos += 1
    while True:
        pos = _skip(text, pos)
        if text[pos:pos + 1] == "]":
            return
        line = text.count("\n", 0, pos) + 1
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise InputError(str(path), e.lineno, None, f"malformed JSON: {e.msg} (column {e.colno})") from None
        yield line, obj
        pos = _skip(text, pos)
        if text[pos:pos + 1] == ",":
            pos += 1
        elif text[pos:pos + 1] != "]":
            raise InputError(str(path), text.count("\n", 0, pos) + 1, None, "malformed JSON: expected ',' or ']'")


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def table_rows(path: str | Path) -> Iterator[tuple[int, dict]]:
    """(line or row number, row) of a JSONL, JSON, Parquet file or a `save_to_disk` folder (every split)."""
    path = Path(path)
    if path.is_dir():
        files = [f for f in ("data.jsonl", "data.parquet") if (path / f).is_file()]
        if files:  # an `rlhf export` folder
            yield from table_rows(path / files[0])
            return
        import datasets

        try:
            ds = datasets.load_from_disk(str(path))
        except Exception as e:  # not a datasets folder
            raise InputError(str(path), None, None, f"expected a JSONL/JSON/Parquet file or a datasets save_to_disk "
                                                    f"folder ({type(e).__name__}: {str(e).splitlines()[0]})") from None
        for part in ds.values() if isinstance(ds, datasets.DatasetDict) else [ds]:
            yield from enumerate(part, start=1)
        return
    if not path.is_file():
        raise InputError(str(path), None, None, "no such file or folder")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        yield from enumerate(pq.read_table(path).to_pylist(), start=1)
    elif path.suffix == ".json":
        for line, obj in json_records(path):
            if not isinstance(obj, dict):
                raise InputError(str(path), line, None, f"expected a JSON object, got {type(obj).__name__}")
            yield line, obj
    else:
        yield from read_jsonl(path)


# --------------------------------------------------------------------------- trl shapes

HH_TURN = re.compile(r"\n\n(Human|Assistant): ")


def _hh_turns(text: str) -> list[dict] | None:
    """Anthropic HH text ("\\n\\nHuman: ...\\n\\nAssistant: ...") as messages; None when it is not one."""
    parts = HH_TURN.split(text)
    if len(parts) < 3 or parts[0].strip():
        return None
    return [{"role": "user" if who == "Human" else "assistant", "content": said.strip()}
            for who, said in zip(parts[1::2], parts[2::2])]


def _answer(c: Checker, value: Any, field_name: str, prompt_messages: list[dict] | None) -> str:
    """The assistant's answer in `value`: a text, or messages that may repeat the prompt before one answer."""
    if isinstance(value, str):
        return c.text(field_name, value)
    msgs = messages(c, field_name, value)
    if prompt_messages and msgs[:len(prompt_messages)] == prompt_messages:
        msgs = msgs[len(prompt_messages):]
    if len(msgs) != 1 or msgs[0]["role"] != "assistant":
        c.fail(field_name, "expected one assistant message (after the prompt's messages, if repeated)")
    return msgs[0]["content"]


def _implicit_prompt(c: Checker, obj: dict) -> tuple[Any, Any, Any]:
    """(prompt, chosen, rejected) of a pair without a `prompt` column: conversations or HH texts sharing a prompt."""
    chosen, rejected = obj["chosen"], obj["rejected"]
    if isinstance(chosen, str) and isinstance(rejected, str):
        chosen, rejected = _hh_turns(chosen), _hh_turns(rejected)
        if chosen is None or rejected is None:
            c.fail("prompt", "missing: chosen/rejected are texts without a shared prompt; add a prompt column "
                             "(or give Anthropic HH texts, \"\\n\\nHuman: ...\\n\\nAssistant: ...\")")
    chosen, rejected = messages(c, "chosen", chosen), messages(c, "rejected", rejected)
    if len(chosen) < 2 or chosen[:-1] != rejected[:-1]:
        c.fail("rejected", "without a prompt column, chosen and rejected must be conversations that differ only in the last answer")
    return chosen[:-1], chosen[-1:], rejected[-1:]


def trl_item(c: Checker, pid, tags, annotator, origin) -> Item:
    obj = c.obj
    if "chosen" in obj and "rejected" in obj:
        prompt, chosen, rejected = (obj["prompt"], obj["chosen"], obj["rejected"]) if "prompt" in obj else _implicit_prompt(c, obj)
        p = prompt_item(c, prompt, "prompt", pid, tags)
        texts = [_answer(c, chosen, "chosen", p.messages), _answer(c, rejected, "rejected", p.messages)]
        if texts[0] == texts[1]:
            c.fail("rejected", "the same text as chosen: a preference needs two different answers")
        return Item(f"{c.file}:{c.line}", p, annotator, responses=texts, order=[[0], [1]], origin=origin)
    if "messages" in obj:
        msgs = c.messages("messages")
        if msgs[-1]["role"] == "user":
            return Item(f"{c.file}:{c.line}", prompt_item(c, msgs, "messages", pid, tags))
        if len(msgs) < 2:
            c.fail("messages", "a demonstration needs the prompt's messages and the assistant's answer")
        return Item(f"{c.file}:{c.line}", prompt_item(c, msgs[:-1], "messages", pid, tags), annotator,
                    answer=_answer(c, msgs[-1:], "messages", None))
    if "prompt" in obj:
        p = prompt_item(c, obj["prompt"], "prompt", pid, tags)
        if "completion" not in obj:
            return Item(f"{c.file}:{c.line}", p)
        return Item(f"{c.file}:{c.line}", p, annotator, answer=_answer(c, obj["completion"], "completion", p.messages))
    c.fail("columns", f"expected trl's columns: prompt (prompts), prompt + completion or messages (demonstrations), "
                      f"chosen + rejected with or without prompt (preferences); got {', '.join(sorted(obj)) or 'none'}")


def read_trl(path: str | Path, **_) -> list[Item]:
    """Items of a dataset in trl's shapes; rows sharing a `ranking_id` become one ranking again."""
    items: list[Item] = []
    groups: dict[Any, list[tuple[Checker, Item]]] = {}
    for line, obj in table_rows(path):
        c = Checker(str(path), line, obj)
        origin = c.optional("origin", str, "human")
        if origin not in ORIGINS:
            c.fail("origin", f"expected one of {', '.join(ORIGINS)}, got {origin!r}")
        item = trl_item(c, c.optional("prompt_id", str, None), c.tags(), c.optional("annotator", str, None) or None, origin)
        rid = obj.get("ranking_id") if item.kind == "rankings" else None
        if rid is None:
            items.append(item)
        elif rid in groups:
            groups[rid].append((c, item))
        else:
            groups[rid] = [(c, item)]
            items.append(item)  # a placeholder, replaced by the whole ranking below
    if not items:
        raise InputError(str(path), None, None, "the file has no records")
    whole = {id(g[0][1]): _ranking_from_pairs(g) for g in groups.values()}
    return [whole.get(id(i), i) for i in items]


def _ranking_from_pairs(group: list[tuple[Checker, Item]]) -> Item:
    """The ranking whose pairs (`rlhf.data.pairs.ranking_to_pairs`) are these rows, in their order.

    An answer's group is the number of answers that beat it; answers keep the order they first appear in.
    """
    first = group[0][1]
    texts: list[str] = []
    for c, it in group:
        if (it.prompt, it.annotator, it.origin) != (first.prompt, first.annotator, first.origin):
            c.fail("ranking_id", f"rows of ranking {c.obj['ranking_id']} differ in prompt, annotator or origin")
        texts += [t for t in it.responses if t not in texts]
    beaten = {t: sum(1 for _, it in group if it.responses[1] == t) for t in texts}
    levels = sorted(set(beaten.values()))
    order = [[i for i, t in enumerate(texts) if beaten[t] == lv] for lv in levels]
    pairs = [(texts[a], texts[b]) for a, b in ranking_to_pairs(order)]
    if pairs != [tuple(it.responses) for _, it in group]:
        c = group[-1][0]
        c.fail("ranking_id", f"the rows of ranking {c.obj['ranking_id']} are not the pairs of one best-first order")
    return Item(first.where, first.prompt, first.annotator, responses=texts, order=order, origin=first.origin)
