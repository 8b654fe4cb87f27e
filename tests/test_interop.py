"""Imports from the tools teams use: Label Studio and Argilla exports, public chosen/rejected pairs.

The fixtures in tests/fixtures/interop/ are written by hand from each tool's documented export format.
Every bad file is one line FILE:LINE: FIELD: what is wrong, and nothing is written.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from conftest import run_cli, write_jsonl
from rlhf.data import registry
from rlhf.data.ingest import import_foreign
from rlhf.data.store import session_scope
from rlhf.data.store.models import Demonstration, Prompt, Ranking, Response, User
from rlhf.errors import InputError

FIX = Path(__file__).parent / "fixtures" / "interop"


def stored() -> dict:
    with session_scope() as s:
        return {t.__tablename__: s.scalar(select(func.count()).select_from(t)) for t in (Prompt, Demonstration, Ranking)}


def rankings() -> list[dict]:
    """Each stored ranking as {prompt, annotator, order as texts best first (ties as lists), status}."""
    with session_scope() as s:
        out = []
        for r in s.scalars(select(Ranking).order_by(Ranking.id)):
            text = {x.id: x.text for x in s.scalars(select(Response).where(Response.id.in_(r.response_ids)))}
            who = s.get(User, r.annotator_id).name if r.annotator_id else None
            prompt = s.get(Prompt, r.prompt_id).messages[-1]["content"]
            out.append({"prompt": prompt, "annotator": who, "status": r.status,
                        "order": [[text[r.response_ids[i]] for i in g] for g in r.order]})
        return out


def demonstrations() -> list[tuple[str, str]]:
    with session_scope() as s:
        return [(d.messages[-2]["content"], d.messages[-1]["content"]) for d in s.scalars(select(Demonstration).order_by(Demonstration.id))]


def run_import(source, path, approved_by=None, **options):
    with session_scope() as s:
        return import_foreign(s, source, path, approved_by, **options)


def test_label_studio_pairwise_export(workspace):
    report = run_import("label-studio", FIX / "label_studio_pairwise.json", approved_by="lead")
    assert report.added == {"prompts": 2, "rankings": 2}
    assert report.skipped == {"choices results": 1, "cancelled annotations": 1}
    first, second = rankings()
    assert first == {"prompt": "How long should I boil an egg for a runny yolk?", "annotator": "label-studio:3", "status": "approved",
                     "order": [["About six minutes in gently boiling water, then cool it in cold water for a minute."],
                               ["Eggs are a good source of protein."]]}
    assert second["annotator"] == "ana@example.org" and second["order"][0][0].startswith("It sends your traffic")  # "right"
    again = run_import("label-studio", FIX / "label_studio_pairwise.json", approved_by="lead")  # a re-import adds nothing
    assert again.added == {} and again.duplicates == {"prompts": 2, "rankings": 2}


def test_label_studio_ranker_and_text_generation_exports(workspace):
    run_import("label-studio", FIX / "label_studio_ranker.json")
    assert [r["order"] for r in rankings()] == [[["Morning Loaf"], ["Crumb & Co."], ["The Bakery Store Shop"]],
                                                [["Crumb & Co."], ["Morning Loaf"], ["The Bakery Store Shop"]]]
    assert {r["status"] for r in rankings()} == {"pending"}  # no --approved-by: for review
    report = run_import("label-studio", FIX / "label_studio_textgen.json")
    assert report.added == {"prompts": 1, "demonstrations": 1}
    assert demonstrations() == [("Explain what a leap year is in one sentence.",
                                 "A leap year has 366 days: February gets a 29th day every four years, with some century exceptions.")]


def test_argilla_dataset_folder(workspace):
    report = run_import("argilla", FIX / "argilla_folder", approved_by="lead")
    assert report.added == {"prompts": 2, "rankings": 2, "demonstrations": 1}
    assert report.skipped == {"draft responses": 1, "label_selection responses": 1}
    basil, sun = rankings()
    assert basil["annotator"] == "argilla:8a1c0000-0000-4000-8000-00000000000a"
    assert basil["order"] == [["Trim the stems and keep it in a glass of water on the counter, loosely covered."],
                              ["Put it in the freezer whole."], ["Basil is an herb."]]
    assert sun["order"] == [["No: sunglasses do not block enough light; use eclipse glasses made to ISO 12312-2."],
                            ["Yes, with dark enough sunglasses.", "Only for a few seconds."]]  # equal ranks: a tie
    assert demonstrations()[0][1].startswith("Trim the stems, stand the bunch")
    with session_scope() as s:  # the tie yields no pair between the tied answers: 2 + 2 pairs
        assert registry.snapshot(s, "preferences")[0].row_count == 5


def test_argilla_records_without_settings_leave_texts_out(workspace, tmp_path):
    records = tmp_path / "records.json"
    records.write_text((FIX / "argilla_folder" / "records.json").read_text())
    report = run_import("argilla", records)
    assert report.added == {"prompts": 2, "rankings": 2}  # the label "cooking" is not taken for an answer
    assert report.skipped == {"draft responses": 1, "untyped responses (no settings.json beside the records)": 2}


def test_public_pairs_texts_conversations_and_hh(workspace):
    report = run_import("dataset", FIX / "pairs.jsonl", approved_by="lead")
    assert report.added == {"prompts": 4, "rankings": 4}
    got = [(r["prompt"], r["order"]) for r in rankings()]
    assert got == [("Name a primary color.", [["Blue."], ["Purple, which is a primary color."]]),
                   ("What is 7 times 8?", [["56"], ["54"]]),  # the prompt repeated in chosen/rejected is cut off
                   ("Can you recommend a short poem to memorize?", [['Try "Fire and Ice" by Robert Frost: nine lines.'], ["No."]]),
                   ("Translate 'thank you' to French.", [["Merci."], ["Gracias."]])]
    r = run_cli("import", "dataset", str(FIX / "pairs.jsonl"), "--approved-by", "lead")  # the CLI: all duplicates now
    assert r.returncode == 0 and "0 rankings added (4 exact duplicates skipped)" in r.stdout, r.stderr


GOOD_PAIR = {"prompt": "Say hi.", "chosen": "Hi!", "rejected": "Bye."}
LS_TASK = {"id": 1, "data": {"prompt": "Say hi.", "a": "Hi!", "b": "Bye."},
           "annotations": [{"completed_by": 1, "result": [{"type": "pairwise", "to_name": "a,b", "value": {"selected": "left"}}]}]}


def _ls(tmp_path, *tasks) -> Path:
    path = tmp_path / "ls.json"
    path.write_text(json.dumps(list(tasks), indent=2))
    return path


def _bad_value(task: dict, **value) -> dict:
    bad = json.loads(json.dumps(task))
    bad["annotations"][0]["result"][0].update(value)
    return bad


BAD = [
    ("dataset", lambda p: write_jsonl(p / "x.jsonl", [GOOD_PAIR, {**GOOD_PAIR, "rejected": "Hi!"}]),
     "x.jsonl:2: rejected: the same text as chosen: a preference needs two different answers"),
    ("dataset", lambda p: write_jsonl(p / "x.jsonl", [GOOD_PAIR, {"chosen": "Hi!", "rejected": "Bye."}]),
     "x.jsonl:2: prompt: missing: chosen/rejected are texts without a shared prompt"),
    ("dataset", lambda p: write_jsonl(p / "x.jsonl", [GOOD_PAIR, {"text": "a document"}]),
     "x.jsonl:2: columns: expected trl's columns: prompt (prompts), prompt + completion or messages (demonstrations), "
     "chosen + rejected with or without prompt (preferences); got text"),
    ("dataset", lambda p: write_jsonl(p / "x.jsonl", [GOOD_PAIR, {**GOOD_PAIR, "origin": "model"}]),
     "x.jsonl:2: origin: expected one of human, simulated, got 'model'"),
    ("dataset", lambda p: write_jsonl(p / "x.jsonl", [GOOD_PAIR, {**GOOD_PAIR, "prompt": [{"role": "assistant", "content": "x"}]}]),
     "x.jsonl:2: prompt[0].role: the last message of a prompt must be the user's"),
    ("label-studio", lambda p: _ls(p, LS_TASK, _bad_value(LS_TASK, value={"selected": "middle"})),
     "ls.json:24: annotations[0].result[0].value.selected: expected \"left\" or \"right\", got 'middle'"),
    ("label-studio", lambda p: _ls(p, LS_TASK, _bad_value(LS_TASK, to_name="a,c")),
     "ls.json:24: annotations[0].result[0].to_name: data has no field 'c': a Text tag's name must be its data key"),
    ("label-studio", lambda p: _ls(p, LS_TASK, {"id": 2, "prompt": "Say hi.", "annotator": "ana@example.org", "comparison": "left"}),
     "ls.json:24: annotations: missing: expected Label Studio's JSON export, tasks {\"data\", \"annotations\"} "
     "(this looks like the JSON-MIN export: export the project as JSON)"),
    ("label-studio", lambda p: _ls(p, LS_TASK, _bad_value(LS_TASK, type="ranker", value={"ranker": ["x", "y"]})),
     "ls.json:24: data: no item list for the Ranker"),
    ("label-studio", lambda p: write_jsonl(p / "x.jsonl", [LS_TASK]),
     "x.jsonl: expected Label Studio's JSON export (a .json file of tasks)"),
    ("argilla", lambda p: _ls(p, {"id": "r1", "fields": {"prompt": "Say hi.", "r1": "Hi!", "r2": "Bye."},
                                  "responses": {"rank": [{"value": ["r1", "r3"], "user_id": "u1"}]}}),
     "ls.json:2: responses.rank[0].value: option 'r3' is not a field of the record"),
    ("argilla", lambda p: _ls(p, {"id": "r1", "text": "Say hi."}),
     "ls.json:2: fields: missing: expected Argilla 2.x records"),
]


@pytest.mark.parametrize("source, make, message", BAD, ids=[f"{s}-{i}" for i, (s, _, _) in enumerate(BAD)])
def test_bad_files_name_file_line_field_and_write_nothing(workspace, tmp_path, source, make, message):
    path = make(tmp_path)
    with pytest.raises(InputError) as e:
        run_import(source, path)
    assert str(e.value).startswith(f"{tmp_path}/{message}"), str(e.value)
    assert "\n" not in str(e.value)
    assert stored() == {"prompts": 0, "demonstrations": 0, "rankings": 0}  # the good first record was not written


def test_cli_error_is_one_line_and_nothing_is_written(workspace, tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [GOOD_PAIR, {**GOOD_PAIR, "chosen": ""}])
    r = run_cli("import", "dataset", str(path))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == f"error: {path}:2: chosen: empty or whitespace-only text\n"
    assert stored() == {"prompts": 0, "demonstrations": 0, "rankings": 0}
