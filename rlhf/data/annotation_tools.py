"""Label Studio and Argilla exports -> checked items for `rlhf.data.interop` (which writes them).

Label Studio (`rlhf import label-studio FILE`): the project's **JSON** export, a list of tasks
`{"id", "data": {...}, "annotations": [{"completed_by", "was_cancelled", "result": [...]}]}`. Read results:

- `pairwise` (Pairwise tag, `toName="answer1,answer2"`): `value.selected` "left" / "right" picks the better
  of `data[answer1]` and `data[answer2]` -> a ranking of the two;
- `ranker` (List + Ranker tags, the LLM-ranking template): `value.ranker` = the List's item ids best first
  (a list, or `{LIST_NAME: [...]}`); items `{"id", "title", "body"}` come from `data[LIST_NAME]` -> a ranking;
- `textarea` (TextArea on the prompt's Text tag, the supervised fine-tuning template): each `value.text`
  entry is an answer to the prompt -> a demonstration.

A Text tag's name must be its data key (`<Text name="prompt" value="$prompt"/>`, Label Studio's own templates
do so). The prompt is `data[--prompt-field]`, else the TextArea's `to_name`, else the first of `PROMPT_FIELDS`.
Cancelled annotations and other result types (choices, ratings) are left out and counted.

Argilla 2.x (`rlhf import argilla PATH`): `dataset.to_disk(PATH)` (a folder with records.json and
settings.json) or `dataset.records.to_json(FILE)`: records `{"id", "fields": {...}, "responses": {QUESTION:
[{"value", "user_id", "status"}]}}`. A `RankingQuestion` response orders option values that are the names of
the record's answer fields (`["response-2", "response-1"]`, or `[{"value", "rank"}]` where equal ranks are a
tie) -> a ranking; a `TextQuestion` response is an answer to the prompt field -> a demonstration. Question
types come from settings.json (in the folder, or beside the records file); without it a list of field names
is a ranking, and a text, which could be a LabelQuestion's as well, is left out. Draft and discarded
responses and other question types are left out and counted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rlhf.data.formats import Checker
from rlhf.data.interop import InteropReport, Item, json_records, prompt_item, ranking_item
from rlhf.errors import InputError

PROMPT_FIELDS = ("prompt", "instruction", "question", "input", "text", "chat", "messages")
"""where the prompt is looked for when --prompt-field is not given, in this order"""


def _skip(report: InteropReport, why: str) -> None:
    report.skipped[why] = report.skipped.get(why, 0) + 1


def _prompt(c: Checker, data: dict, where: str, prompt_field: str | None, prefer: list[str] = (), avoid: list[str] = ()):
    keys = [prompt_field] if prompt_field else [*prefer, *(k for k in PROMPT_FIELDS if k not in avoid)]
    for key in keys:
        if key in data:
            return prompt_item(c, data[key], f"{where}.{key}")
    c.fail(where, f"no prompt: expected one of {', '.join(keys)} among {', '.join(sorted(data)) or 'no fields'}"
                  + ("" if prompt_field else "; name it with --prompt-field"))


# --------------------------------------------------------------------------- Label Studio


def _ls_user(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("email") or value.get("id")
    return None if value in (None, "") else value if isinstance(value, str) else f"label-studio:{value}"


def _names(to_name: Any) -> list[str]:
    return [n.strip() for n in to_name.split(",")] if isinstance(to_name, str) else list(to_name or [])


def _ls_pairwise(c: Checker, data: dict, res: dict, f: str, annotator, prompt_field) -> Item:
    names = _names(res.get("to_name"))
    if len(names) != 2:
        c.fail(f"{f}.to_name", f"expected the two compared Text names (\"answer1,answer2\"), got {res.get('to_name')!r}")
    for n in names:
        if n not in data:
            c.fail(f"{f}.to_name", f"data has no field {n!r}: a Text tag's name must be its data key (name=\"{n}\" value=\"${n}\")")
    selected = (res.get("value") or {}).get("selected")
    if selected not in ("left", "right"):
        c.fail(f"{f}.value.selected", f"expected \"left\" or \"right\", got {selected!r}")
    prompt = _prompt(c, data, "data", prompt_field, avoid=names)
    order = [[0], [1]] if selected == "left" else [[1], [0]]
    return ranking_item(c, prompt, [data[n] for n in names], order, annotator, [f"data.{n}" for n in names])


def _ls_ranker(c: Checker, data: dict, res: dict, f: str, annotator, prompt_field) -> Item:
    ranked = (res.get("value") or {}).get("ranker")
    if isinstance(ranked, dict):
        buckets = [k for k in ranked if k != "_"]
        if len(buckets) != 1:
            c.fail(f"{f}.value.ranker", f"buckets {', '.join(buckets) or '(none)'} are not one order: expected the "
                                        "List's item ids best first (a Ranker without buckets)")
        list_name, ranked = buckets[0], ranked[buckets[0]]
    else:
        list_name = (_names(res.get("to_name")) or [""])[0]
    if not isinstance(ranked, list) or not ranked:
        c.fail(f"{f}.value.ranker", "expected the List's item ids, best first")
    listed = data.get(list_name) if isinstance(data.get(list_name), list) else None
    if listed is None:
        lists = [k for k, v in data.items() if isinstance(v, list) and v and all(isinstance(i, dict) for i in v)]
        if len(lists) != 1:
            c.fail("data", f"no item list for the Ranker: expected data.{list_name or 'items'} = [{{\"id\", \"title\", \"body\"}}, ...]")
        list_name, listed = lists[0], data[lists[0]]
    ids = [str(i.get("id")) if isinstance(i, dict) else None for i in listed]
    texts = [i.get("body") or i.get("title") if isinstance(i, dict) else None for i in listed]
    missing = [r for r in ranked if str(r) not in ids]
    if missing or len(ranked) != len(ids):
        c.fail(f"{f}.value.ranker", f"ranks {len(ranked)} ids of the {len(ids)} items in data.{list_name}"
                                    + (f"; unknown ids {missing}" if missing else ""))
    order = [[ids.index(str(r))] for r in ranked]
    prompt = _prompt(c, data, "data", prompt_field, avoid=[list_name])
    return ranking_item(c, prompt, texts, order, annotator, [f"data.{list_name}[{k}].body" for k in range(len(texts))])


def read_label_studio(path: Path, report: InteropReport, prompt_field: str | None = None, **_) -> list[Item]:
    if path.is_dir() or path.suffix != ".json":
        raise InputError(str(path), None, None, "expected Label Studio's JSON export (a .json file of tasks)")
    items: list[Item] = []
    for line, task in json_records(path, "Label Studio's JSON export: a JSON array of tasks"):
        c = Checker(str(path), line, task if isinstance(task, dict) else {})
        if not isinstance(task, dict) or "annotations" not in task:
            c.fail("annotations", "missing: expected Label Studio's JSON export, tasks {\"data\", \"annotations\"}"
                   + (" (this looks like the JSON-MIN export: export the project as JSON)" if isinstance(task, dict) and "annotator" in task else ""))
        data = c.require("data", dict)
        for a, ann in enumerate(c.require("annotations", list)):
            if not isinstance(ann, dict) or not isinstance(ann.get("result", []), list):
                c.fail(f"annotations[{a}]", "expected an object with a result list")
            if ann.get("was_cancelled"):
                _skip(report, "cancelled annotations")
                continue
            annotator = _ls_user(ann.get("completed_by"))
            for r, res in enumerate(ann.get("result") or []):
                f = f"annotations[{a}].result[{r}]"
                kind = res.get("type") if isinstance(res, dict) else None
                if kind == "pairwise":
                    items.append(_ls_pairwise(c, data, res, f, annotator, prompt_field))
                elif kind == "ranker":
                    items.append(_ls_ranker(c, data, res, f, annotator, prompt_field))
                elif kind == "textarea":
                    texts = (res.get("value") or {}).get("text")
                    if not isinstance(texts, list) or not texts:
                        c.fail(f"{f}.value.text", "expected a list of answer texts")
                    prompt = _prompt(c, data, "data", prompt_field, prefer=_names(res.get("to_name")))
                    items += [Item(f"{c.file}:{c.line}", prompt, annotator, answer=c.text(f"{f}.value.text[{i}]", t))
                              for i, t in enumerate(texts)]
                else:
                    _skip(report, f"{kind or 'untyped'} results")
    return items


# --------------------------------------------------------------------------- Argilla


def _question_types(folder: Path) -> dict[str, str]:
    settings = folder / "settings.json"
    if not settings.is_file():
        return {}
    try:
        questions = json.loads(settings.read_text(encoding="utf-8")).get("questions", [])
        return {q["name"]: (q.get("settings") or {}).get("type") or q.get("type") for q in questions}
    except (json.JSONDecodeError, AttributeError, KeyError, TypeError) as e:
        raise InputError(str(settings), None, "questions", f"expected Argilla settings with named questions ({e})") from None


def _argilla_order(c: Checker, value: Any, f: str) -> tuple[list[str], list[list[int]]]:
    """(option values, best-first groups) of a RankingQuestion value: ["a", "b"] or [{"value": "a", "rank": 1}, ...]."""
    if not isinstance(value, list) or not value:
        c.fail(f, "expected a RankingQuestion value: option values best first, or [{\"value\", \"rank\"}]")
    if all(isinstance(v, str) for v in value):
        return value, [[i] for i in range(len(value))]
    if not all(isinstance(v, dict) and isinstance(v.get("value"), str) and isinstance(v.get("rank"), int) for v in value):
        c.fail(f, "expected option values best first, or [{\"value\": OPTION, \"rank\": N}] (equal ranks are a tie)")
    options = [v["value"] for v in value]
    ranks = sorted({v["rank"] for v in value})
    return options, [[i for i, v in enumerate(value) if v["rank"] == r] for r in ranks]


def _untyped(value: Any, fields: dict) -> str:
    """The question type of a response without settings.json: a list naming record fields (or of {"value", "rank"})
    is a ranking; a text could be a TextQuestion's answer or a LabelQuestion's label, so it is left out."""
    if isinstance(value, list) and value and (all(isinstance(v, dict) and "rank" in v for v in value)
                                              or any(isinstance(v, str) and v in fields for v in value)):
        return "ranking"
    return "untyped"


def read_argilla(path: Path, report: InteropReport, prompt_field: str | None = None, **_) -> list[Item]:
    records = path / "records.json" if path.is_dir() else path
    types = _question_types(records.parent)
    if not records.is_file():
        raise InputError(str(records), None, None, "no such file: expected dataset.to_disk's folder or records.to_json's file")
    items: list[Item] = []
    for line, rec in json_records(records, "Argilla records (records.to_json): a JSON array of records"):
        c = Checker(str(records), line, rec if isinstance(rec, dict) else {})
        if not isinstance(rec, dict) or not isinstance(rec.get("fields"), dict):
            c.fail("fields", "missing: expected Argilla 2.x records {\"id\", \"fields\", \"responses\"} "
                             "(dataset.records.to_json or dataset.to_disk)")
        fields = rec["fields"]
        for question, answers in c.optional("responses", dict, {}).items():
            if not isinstance(answers, list):
                c.fail(f"responses.{question}", "expected a list of user responses")
            for i, ans in enumerate(answers):
                f = f"responses.{question}[{i}]"
                if not isinstance(ans, dict) or "value" not in ans:
                    c.fail(f, "expected a response {\"value\", \"user_id\", \"status\"}")
                kind = types.get(question) or _untyped(ans["value"], fields)
                status = ans.get("status") or "submitted"
                if status != "submitted" or kind not in ("ranking", "text"):
                    _skip(report, f"{status} responses" if status != "submitted" else
                          "untyped responses (no settings.json beside the records)" if kind == "untyped" else f"{kind} responses")
                    continue
                annotator = f"argilla:{ans['user_id']}" if ans.get("user_id") else None
                if kind == "text":
                    prompt = _prompt(c, fields, "fields", prompt_field)
                    items.append(Item(f"{c.file}:{c.line}", prompt, annotator, answer=c.text(f"{f}.value", ans["value"])))
                    continue
                options, order = _argilla_order(c, ans["value"], f"{f}.value")
                for o in options:
                    if o not in fields:
                        c.fail(f"{f}.value", f"option {o!r} is not a field of the record: the RankingQuestion's values must "
                                             f"name the fields holding the answers ({', '.join(sorted(fields))})")
                prompt = _prompt(c, fields, "fields", prompt_field, avoid=options)
                items.append(ranking_item(c, prompt, [fields[o] for o in options], order, annotator, [f"fields.{o}" for o in options]))
    return items
