"""Small text checks the style guides share (words, sentences, key terms). Standard library only."""

from __future__ import annotations

import re

WORD = re.compile(r"[A-Za-z0-9']+")
SENTENCE_END = re.compile(r"[.!?][\"')\]]*(\s|$)")
FINISHED = re.compile(r"([.!?]|```)[\"')\]]*\s*$")
STOP = frozenset("""a an and are as at be but by can could do does for from had has have how i if in into is it its
me my of on or our should so than that the their them then there these they this to was we what when where which
who why will with would you your about also just like more most some such very give tell explain describe please
write list keep short brief need want know make""".split())


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def sentences(text: str) -> list[str]:
    parts = [p.strip() for p in re.split(r"(?<=[.!?])\s+|\n+", text.strip())]
    return [p for p in parts if p]


def finished(text: str) -> bool:
    return bool(FINISHED.search(text.strip()))


def key_terms(question: str) -> set[str]:
    """Content words of 4+ letters, cut to 5-letter stems (so "searing" matches "sear..." forms loosely)."""
    return {w[:5] for w in words(question) if len(w) >= 4 and w not in STOP}
