"""Style guide (held out: never used to choose settings): explain like a teacher.

1. Define or state the point in the first sentence ("X is ...", "X means ...", "To do X, ...").
2. Give an example ("for example", "e.g.", "such as", "like").
3. No disclaimers ("consult a professional", "it is important to note", "as an AI", "I cannot").
4. End on a finished sentence.
"""

from __future__ import annotations

import re

DEFINES = re.compile(r"\b(is|are|means|refers to|was|were)\b|^\s*to\s+\w+", re.I)
EXAMPLE = re.compile(r"\bfor example\b|\be\.g\.|\bsuch as\b|\blike\b|\bfor instance\b", re.I)
DISCLAIMER = ("consult a", "it is important to note", "as an ai", "i cannot", "i can't", "please note")
FINISHED = re.compile(r"[.!?][\"')\]]*\s*$")


def score(prompt: str, response: str) -> float:
    text = response.strip()
    if not text:
        return -2.0
    first = re.split(r"(?<=[.!?])\s+", text)[0]
    points = 0.5 if DEFINES.search(first) else 0.0
    points += 0.5 if EXAMPLE.search(text) else 0.0
    points -= 1.0 if any(d in text.lower() for d in DISCLAIMER) else 0.0
    points += 0.5 if FINISHED.search(text) else 0.0
    return points
