"""The JSONL interchange formats (DESIGN.md) and their validation.

Every check names the file, the line and the field. A file is validated to its last line
before anything is written, so one bad line rejects the file and nothing is stored; it is read
line by line (`check_file`), never whole, so its size does not bound what can be imported.
The same checks guard every other writer (`rlhf.data.records`): `Checker` for one record,
`check_text` for one text, `check_order` for a best-first order, `ranks_to_order` for the
ranks a person types (one per shown answer).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterator, Sequence

from rlhf.errors import InputError, RlhfError

ROLES = ("system", "user", "assistant")
MAX_TEXT_CHARS = int(os.environ.get("RLHF_MAX_TEXT_CHARS", "20000"))
"""Longest text accepted in any message or response (characters); `RLHF_MAX_TEXT_CHARS` overrides."""
# The longest short strings the store keeps: the column sizes in rlhf.data.store are these numbers, so what
# passes a check here always fits (PostgreSQL enforces VARCHAR(N); SQLite would store anything).
ID_CHARS = 256
"""a prompt's `id` (prompts.external_id)"""
NAME_CHARS = 128
"""a person's or a rubric's name (users.name, reviews.reviewer_name, ...)"""
MODEL_REF_CHARS = 256
"""a model reference stored with a response (`NAME@vN`, a folder, the built-in name)"""
REGISTRY_NAME_CHARS = 64
"""a dataset or model name in the registry (`NAME` of `NAME@vN`)"""
TAG_CHARS = 128
"""one tag of a prompt"""
LETTERS = "ABCDEFGHI"
"""the labels of shown answers (at most 9 candidates are shown): answer A, B, ..."""


def content_hash(obj: Any) -> str:
    """sha256 of the canonical JSON of `obj`: equal content, equal hash."""
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line; bad UTF-8 or JSON is an InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), None, None, "no such file")
    name = str(path)
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError(name, lineno, None, f"invalid UTF-8 at byte {e.start}") from None
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                raise InputError(name, lineno, None, f"malformed JSON: {e.msg} (column {e.colno})") from None
            if not isinstance(obj, dict):
                raise InputError(name, lineno, None, f"expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj


class Checker:
    """Field checks for one record; every failure names file:line:field (`file` may be any "where")."""

    def __init__(self, file: str, line: int | None, obj: dict):
        self.file, self.line, self.obj = file, line, obj

    def fail(self, field: str, message: str):
        raise InputError(self.file, self.line, field, message)

    def require(self, field: str, kind: type | tuple[type, ...]) -> Any:
        if field not in self.obj:
            self.fail(field, "missing required field")
        value = self.obj[field]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            self.fail(field, f"expected {names}, got {type(value).__name__}")
        return value

    def optional(self, field: str, kind: type | tuple[type, ...], default: Any) -> Any:
        if field not in self.obj or self.obj[field] is None:
            return default
        return self.require(field, kind)

    def text(self, field: str, value: Any, max_chars: int | None = None) -> str:
        """`value` if it is a non-blank string of at most `max_chars` (default MAX_TEXT_CHARS) without a NUL character."""
        if not isinstance(value, str):
            self.fail(field, f"expected a string, got {type(value).__name__}")
        if not value.strip():
            self.fail(field, "empty or whitespace-only text")
        limit = MAX_TEXT_CHARS if max_chars is None else max_chars
        if len(value) > limit:
            self.fail(field, f"text is {len(value)} characters, over the limit of {limit}"
                      + (" (RLHF_MAX_TEXT_CHARS)" if max_chars is None else ""))
        self.no_nul(field, value)
        return value

    def no_nul(self, field: str, value: str | None) -> str | None:
        """PostgreSQL cannot store a NUL character in text: refuse it by name wherever text enters."""
        if value is not None and "\x00" in value:
            self.fail(field, "text contains a NUL character (\\x00); remove it")
        return value

    def name(self, field: str, value: Any, max_chars: int = NAME_CHARS) -> str:
        """A short one-line name (a person, a tag, a model reference): non-blank, at most `max_chars`, no control
        characters; surrounding spaces dropped."""
        value = self.text(field, value, max_chars)
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            self.fail(field, "a name cannot contain control characters (NUL, tab, line breaks)")
        return value.strip()

    def note(self, field: str, value: Any) -> str | None:
        """Optional free text (a reason, a skip note): None when blank, else at most MAX_TEXT_CHARS without NUL."""
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return self.text(field, value).strip()

    def messages(self, field: str = "messages") -> list[dict]:
        msgs = self.require(field, list)
        if not msgs:
            self.fail(field, "empty list of messages")
        out = []
        for i, m in enumerate(msgs):
            where = f"{field}[{i}]"
            if not isinstance(m, dict):
                self.fail(where, f"expected an object with role and content, got {type(m).__name__}")
            role = m.get("role")
            if role not in ROLES:
                self.fail(f"{where}.role", f"expected one of {', '.join(ROLES)}, got {role!r}")
            out.append({"role": role, "content": self.text(f"{where}.content", m.get("content"))})
        return out

    def tags(self) -> list[str]:
        tags = self.optional("tags", list, [])
        for i, t in enumerate(tags):
            if not isinstance(t, str) or not t.strip():
                self.fail(f"tags[{i}]", "expected a non-empty string")
        return [self.name(f"tags[{i}]", t, TAG_CHARS) for i, t in enumerate(tags)]




def check_text(where: str, field: str, value: Any) -> str:
    """One text checked like a file's: non-blank, at most MAX_TEXT_CHARS, no NUL; an InputError names where and field.

    >>> check_text("edit of demonstration 3", "answer", "Paris.")
    'Paris.'
    >>> check_text("edit of demonstration 3", "answer", " ")
    Traceback (most recent call last):
    ...
    rlhf.errors.InputError: edit of demonstration 3: answer: empty or whitespace-only text
    """
    return Checker(where, None, {}).text(field, value)


def check_name(where: str, field: str, value: Any, max_chars: int = NAME_CHARS) -> str:
    """One short name checked like a file's (see `Checker.name`).

    >>> check_name("import", "annotator", "ann" * 50)
    Traceback (most recent call last):
    ...
    rlhf.errors.InputError: import: annotator: text is 150 characters, over the limit of 128
    """
    return Checker(where, None, {}).name(field, value, max_chars)


def check_note(where: str, field: str, value: Any) -> str | None:
    """Optional free text (a reason, a note): None when blank; else no NUL and at most MAX_TEXT_CHARS."""
    return Checker(where, None, {}).note(field, value)


def _conversation(c: Checker, last_role: str, what: str) -> list[dict]:
    """The checked `messages`, whose last one must come from `last_role`."""
    msgs = c.messages()
    if msgs[-1]["role"] != last_role:
        c.fail(f"messages[{len(msgs) - 1}].role", f"the last message of {what}")
    return msgs


def check_prompt(file: str, line: int, obj: dict) -> dict:
    c = Checker(file, line, obj)
    pid = c.name("id", c.require("id", str), ID_CHARS)
    msgs = _conversation(c, "user", "a prompt must be the user's")
    return {"id": pid, "messages": msgs, "tags": c.tags()}


def check_demonstration(file: str, line: int, obj: dict) -> dict:
    c = Checker(file, line, obj)
    pid = c.name("prompt_id", c.require("prompt_id", str), ID_CHARS)
    msgs = _conversation(c, "assistant", "a demonstration must be the assistant's answer")
    if len(msgs) < 2:
        c.fail("messages", "a demonstration needs the prompt's messages and the assistant's answer")
    return {"prompt_id": pid, "messages": msgs, "annotator": _annotator(c)}


def _annotator(c: Checker) -> str | None:
    """The optional annotator name, as given (it is part of a ranking's content hash), checked like a name."""
    annotator = c.optional("annotator", str, None)
    if annotator:
        c.name("annotator", annotator)
    return annotator


def check_order(c: Checker, order: Any, k: int, field: str = "order") -> list[list[int]]:
    """A best-first order over k responses: inner lists are ties, each index exactly once.

    >>> check_order(Checker("adjudication", None, {}), [[1], 0], 2)
    [[1], [0]]
    """
    if not isinstance(order, list) or not order:
        c.fail(field, "expected a non-empty list of lists of response indices, best first")
    seen: set[int] = set()
    out = []
    for i, group in enumerate(order):
        group = [group] if isinstance(group, int) and not isinstance(group, bool) else group
        if not isinstance(group, list) or not group:
            c.fail(f"{field}[{i}]", "expected a non-empty list of response indices (a tie) or one index")
        for idx in group:
            if not isinstance(idx, int) or isinstance(idx, bool):
                c.fail(f"{field}[{i}]", f"expected integer indices, got {idx!r}")
            if not 0 <= idx < k:
                c.fail(f"{field}[{i}]", f"response index {idx} is out of range 0..{k - 1}")
            if idx in seen:
                c.fail(f"{field}[{i}]", f"response index {idx} appears more than once")
            seen.add(idx)
        out.append(list(group))
    missing = sorted(set(range(k)) - seen)
    if missing:
        c.fail(field, f"response indices {missing} are missing: every response must be ranked exactly once")
    return out


def check_ranking(file: str, line: int, obj: dict) -> dict:
    c = Checker(file, line, obj)
    pid = c.name("prompt_id", c.require("prompt_id", str), ID_CHARS)
    responses = c.require("responses", list)
    if len(responses) < 2:
        c.fail("responses", f"a ranking needs at least 2 responses, got {len(responses)}")
    texts = [c.text(f"responses[{i}]", r) for i, r in enumerate(responses)]
    if len(set(texts)) != len(texts):
        c.fail("responses", "two responses have the same text")
    order = check_order(c, c.require("order", list), len(texts))
    return {
        "prompt_id": pid,
        "responses": texts,
        "order": order,
        "all_bad": c.optional("all_bad", bool, False),
        "annotator": _annotator(c),
        "reason": c.note("reason", c.optional("reason", str, None)),
    }


def ranks_to_order(ranks: Sequence, k: int | None = None, all_bad: bool = False) -> list[list[int]]:
    """Typed ranks, one per shown answer (1 = best, equal numbers = tie) -> best-first groups of answer positions.

    With `k` (the number of answers shown) extra ranks are ignored, missing ones are blanks, and
    each rank must be in 1..k; without it the numbers are only compared (gaps are fine). A blank
    is an error, except with `all_bad` and no rank at all: every answer is then one tie. Errors
    name the answer by its letter, as the page shows it.

    >>> ranks_to_order(["2", 1, 2], k=3)
    [[1], [0, 2]]
    >>> ranks_to_order([None, ""], k=2, all_bad=True)
    [[0, 1]]
    >>> ranks_to_order([1, 7, 2], k=3)
    Traceback (most recent call last):
    ...
    rlhf.errors.RlhfError: answer B: rank 7 is outside 1..3
    """
    ranks = list(ranks or [])
    if k is not None:
        ranks = ranks[:k] + [None] * max(0, k - len(ranks))
    values: list[int | None] = []
    for i, r in enumerate(ranks):
        if r in (None, ""):
            values.append(None)
            continue
        try:
            v = int(r)
        except (TypeError, ValueError):
            raise RlhfError(f"answer {LETTERS[i]}: rank {r!r} is not a number") from None
        if k is not None and not 1 <= v <= k:
            raise RlhfError(f"answer {LETTERS[i]}: rank {v} is outside 1..{k}")
        values.append(v)
    missing = [LETTERS[i] for i, v in enumerate(values) if v is None]
    if all_bad and missing and len(missing) == len(values):
        return [list(range(len(values)))]  # all bad and not ordered: one group, every answer tied
    if missing:
        raise RlhfError(f"give every answer a rank (1 = best, equal numbers = tie): missing {', '.join(missing)}")
    groups: dict[int, list[int]] = {}
    for i, v in enumerate(values):
        groups.setdefault(v, []).append(i)
    return [groups[v] for v in sorted(groups)]


CHECKERS = {"prompts": check_prompt, "demonstrations": check_demonstration, "rankings": check_ranking}


def check_file(kind: str, path: str | Path) -> Iterator[tuple[int, dict]]:
    """Read a JSONL file of `kind` line by line: (line, normalized record) pairs, an InputError on the first bad line.

    Streams: nothing but the current line is held, whatever the file's size. An importer reads the
    file twice through this (validate all, then write), so one bad line still rejects the whole file.
    """
    if kind not in CHECKERS:
        raise InputError(str(path), None, None, f"unknown kind {kind!r}: expected one of {', '.join(CHECKERS)}")
    check = CHECKERS[kind]
    for line, obj in read_jsonl(path):
        yield line, check(str(path), line, obj)


def validate_file(kind: str, path: str | Path) -> int:
    """Validate a whole JSONL file of `kind` without keeping it: its number of records, or an InputError."""
    n = sum(1 for _ in check_file(kind, path))
    if not n:
        raise InputError(str(path), None, None, "the file has no records")
    return n
