"""Imports: every bad input gets a one-line FILE:LINE: FIELD error, exit 2, and nothing is written."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from conftest import run_cli, write_jsonl
from rlhf.errors import InputError
from rlhf.data.store import session_scope
from rlhf.data.ingest import import_demonstrations, import_prompts, import_rankings
from rlhf.data.store.models import Demonstration, Prompt, Ranking, Response, Review

U = {"role": "user", "content": "How do I boil an egg?"}
A = {"role": "assistant", "content": "Boil water, add the egg, cook 9 minutes."}
GOOD_PROMPTS = [
    {"id": "p1", "messages": [U], "tags": ["cooking"]},
    {"id": "p2", "messages": [{"role": "user", "content": "What is <script>alert(1)</script>?"}], "tags": ["web", "heldout"]},
]


@pytest.fixture
def workspace(workspace, database):
    """conftest's workspace, on SQLite and on a fresh PostgreSQL database (the `database` parameter)."""
    return workspace


def counts():
    with session_scope() as s:
        return tuple(s.scalar(select(func.count()).select_from(t)) for t in (Prompt, Demonstration, Ranking, Response))


@pytest.fixture
def prompts_file(workspace, tmp_path):
    path = write_jsonl(tmp_path / "prompts.jsonl", GOOD_PROMPTS)
    with session_scope() as s:
        import_prompts(s, path)
    return path


def test_prompts_import_split_and_html_kept_as_text(prompts_file):
    with session_scope() as s:
        rows = {p.external_id: p for p in s.scalars(select(Prompt))}
    assert rows["p1"].split == "train" and rows["p2"].split == "heldout"
    assert rows["p2"].messages[0]["content"] == "What is <script>alert(1)</script>?"


def test_exact_duplicates_are_skipped_and_counted(prompts_file):
    with session_scope() as s:
        report = import_prompts(s, prompts_file)
    assert (report.added, report.duplicates) == (0, 2)
    assert counts()[0] == 2


BAD_PROMPT_LINES = [
    ('{"id": "x", "messages": [', 1, None, "malformed JSON"),
    ('["not", "an", "object"]', 1, None, "expected a JSON object"),
    ('{"messages": [{"role": "user", "content": "hi"}]}', 1, "id", "missing required field"),
    ('{"id": 5, "messages": [{"role": "user", "content": "hi"}]}', 1, "id", "expected str"),
    ('{"id": "x", "messages": [{"role": "user", "content": "   "}]}', 1, "messages[0].content", "empty or whitespace-only"),
    ('{"id": "x", "messages": [{"role": "robot", "content": "hi"}]}', 1, "messages[0].role", "expected one of"),
    ('{"id": "x", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}', 1,
     "messages[1].role", "last message of a prompt"),
    ('{"id": "x", "messages": []}', 1, "messages", "empty list"),
    ('{"id": "x", "messages": [{"role": "user", "content": "hi"}], "tags": "cooking"}', 1, "tags", "expected list"),
]


@pytest.mark.parametrize("line,lineno,field,message", BAD_PROMPT_LINES)
def test_bad_prompt_line_rejects_whole_file(workspace, tmp_path, line, lineno, field, message):
    good = '{"id": "ok", "messages": [{"role": "user", "content": "fine"}]}'
    path = write_jsonl(tmp_path / "p.jsonl", [good, line] if lineno == 2 else [line, good])
    with pytest.raises(InputError) as e:
        with session_scope() as s:
            import_prompts(s, path)
    assert e.value.line == lineno and e.value.field == field and message in str(e.value)
    assert str(e.value).startswith(f"{path}:{lineno}:")
    assert counts() == (0, 0, 0, 0)


def test_bad_line_after_good_lines_writes_nothing(workspace, tmp_path):
    lines = [{"id": f"p{i}", "messages": [{"role": "user", "content": f"q{i}"}]} for i in range(5)] + ['{"id": "bad"']
    path = write_jsonl(tmp_path / "p.jsonl", lines)
    with pytest.raises(InputError, match=r":6: malformed JSON"):
        with session_scope() as s:
            import_prompts(s, path)
    assert counts()[0] == 0


def test_invalid_utf8(workspace, tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"id": "a", "messages": [{"role": "user", "content": "caf\xe9"}]}\n')
    with pytest.raises(InputError, match=r"p.jsonl:1: invalid UTF-8"):
        with session_scope() as s:
            import_prompts(s, path)


def test_text_over_size_limit(workspace, tmp_path, monkeypatch):
    monkeypatch.setattr("rlhf.data.formats.MAX_TEXT_CHARS", 100)
    path = write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "messages": [{"role": "user", "content": "x" * 101}]}])
    with pytest.raises(InputError, match=r":1: messages\[0\].content: text is 101 characters, over the limit of 100"):
        with session_scope() as s:
            import_prompts(s, path)


def test_demonstrations_unknown_prompt_and_mismatch(prompts_file, tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt_id": "p1", "messages": [U, A]},
                                              {"prompt_id": "nope", "messages": [U, A]}])
    with pytest.raises(InputError, match=r"d.jsonl:2: prompt_id: unknown prompt 'nope'"):
        with session_scope() as s:
            import_demonstrations(s, path)
    path = write_jsonl(tmp_path / "d2.jsonl", [{"prompt_id": "p1", "messages": [{"role": "user", "content": "other"}, A]}])
    with pytest.raises(InputError, match=r"d2.jsonl:1: messages: the messages before the answer differ"):
        with session_scope() as s:
            import_demonstrations(s, path)
    path = write_jsonl(tmp_path / "d3.jsonl", [{"prompt_id": "p1", "messages": [U]}])
    with pytest.raises(InputError, match=r"d3.jsonl:1: messages\[0\].role: the last message of a demonstration"):
        with session_scope() as s:
            import_demonstrations(s, path)
    assert counts()[1] == 0


def test_demonstrations_approved_by_records_a_review(prompts_file, tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt_id": "p1", "messages": [U, A], "annotator": "ann"}])
    with session_scope() as s:
        assert import_demonstrations(s, path, approved_by="lead").added == 1
    with session_scope() as s:
        d = s.scalars(select(Demonstration)).one()
        review = s.scalars(select(Review)).one()
        assert d.status == "approved" and review.item_id == d.id and review.reviewer_name == "lead"


@pytest.mark.parametrize("order,field,message", [
    ([[0], [0]], "order[1]", "appears more than once"),
    ([[0], [3]], "order[1]", "out of range 0..1"),
    ([[0]], "order", "indices [1] are missing"),
    ([], "order", "non-empty list"),
    ([["a"], [1]], "order[0]", "expected integer indices"),
])
def test_bad_rankings(prompts_file, tmp_path, order, field, message):
    path = write_jsonl(tmp_path / "r.jsonl", [{"prompt_id": "p1", "responses": ["a", "b"], "order": order}])
    with pytest.raises(InputError) as e:
        with session_scope() as s:
            import_rankings(s, path)
    assert e.value.field == field and message in str(e.value)
    assert counts()[2:] == (0, 0)


def test_ranking_with_ties_round_trips(prompts_file, tmp_path):
    rec = {"prompt_id": "p1", "responses": ["a", "b", "c", "d"], "order": [[1], [0, 3], [2]], "annotator": "ann"}
    path = write_jsonl(tmp_path / "r.jsonl", [rec, rec])
    with session_scope() as s:
        report = import_rankings(s, path)
    assert (report.added, report.duplicates) == (1, 1)
    with session_scope() as s:
        r = s.scalars(select(Ranking)).one()
        texts = [s.get(Response, i).text for i in r.response_ids]
    assert r.order == [[1], [0, 3], [2]] and texts == ["a", "b", "c", "d"]


def test_cli_error_is_one_line_and_exit_2(workspace, tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", ['{"id": "a", "messages": [{"role": "user", "content": ""}]}'])
    out = run_cli("import", "prompts", str(path))
    assert out.returncode == 2
    assert out.stderr.strip() == f"error: {path}:1: messages[0].content: empty or whitespace-only text"
    assert "Traceback" not in out.stderr


def test_cli_missing_file(workspace, tmp_path):
    out = run_cli("import", "prompts", str(tmp_path / "nope.jsonl"))
    assert out.returncode == 2 and "nope.jsonl: no such file" in out.stderr


def _import_peak(kind: str, path) -> tuple[int, float]:
    """(rows added, peak traced memory in MB) of importing `path`."""
    import tracemalloc

    from rlhf.data.ingest import IMPORTERS

    tracemalloc.start()
    try:
        with session_scope() as s:
            added = IMPORTERS[kind](s, path).added
        return added, tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def test_imports_stream_their_files_in_memory_independent_of_size(workspace, tmp_path):
    """A file is read line by line (validated whole first, then written in chunks): 6x the lines, not 6x the memory."""
    filler = "a longer prompt text " * 50  # ~1 KB a line
    _import_peak("prompts", write_jsonl(tmp_path / "warm.jsonl", [{"id": "w", "messages": [{"role": "user", "content": "w"}]}]))
    peaks = {}  # (after a first import paid for the one-time costs: compiled statements, caches)
    for n in (1000, 6000):
        path = write_jsonl(tmp_path / f"p{n}.jsonl", [{"id": f"n{n}-{i}", "messages": [{"role": "user", "content": f"{n}/{i} {filler}"}]}
                                                       for i in range(n)])
        added, peaks[n] = _import_peak("prompts", path)
        assert added == n
    size_mb = (tmp_path / "p6000.jsonl").stat().st_size / 1e6
    # the whole file, parsed, would take several times its size; streamed, a chunk's worth whatever the size
    assert peaks[6000] < peaks[1000] * 1.5 + 1.0 and peaks[6000] < size_mb, (peaks, size_mb)
    demo_peaks = {}
    for start, n in ((0, 1000), (1000, 5000)):  # demonstrations and their approvals, chunk by chunk too
        demos = write_jsonl(tmp_path / f"d{n}.jsonl", [{"prompt_id": f"n6000-{i}", "messages": [
            {"role": "user", "content": f"6000/{i} {filler}"}, {"role": "assistant", "content": f"answer {i} {filler}"}]}
            for i in range(start, start + n)])
        added, demo_peaks[n] = _import_peak("demonstrations", demos)
        assert added == n
    assert demo_peaks[5000] < demo_peaks[1000] * 1.5 + 1.0, demo_peaks

