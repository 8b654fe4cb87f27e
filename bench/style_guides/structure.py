"""Style guide: format and structure.

1. Lead with the answer: no preamble ("Sure", "Great question", "Certainly", "Hello", "Well,").
2. Finish: the last sentence is complete.
3. Never repeat a sentence.
4. Keep paragraphs short: no paragraph of more than three sentences; a list of two or more items is welcome.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _checks import finished, sentences  # noqa: E402

PREAMBLE = re.compile(r"^\s*(sure|certainly|of course|great question|good question|hello|hi|hey|well|so|absolutely|okay|ok)\b",
                      re.I)
LIST_ITEM = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+\S", re.M)


def score(prompt: str, response: str) -> float:
    text = response.strip()
    if not text:
        return -2.0
    points = 0.0
    points += 0.0 if PREAMBLE.search(text) else 1.0
    points += 0.5 if finished(text) else 0.0
    sents = [s.lower() for s in sentences(text)]
    points -= 1.0 if len(sents) != len(set(sents)) else 0.0
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    longest = max(len(sentences(p)) for p in paragraphs)
    points += 0.5 if longest <= 3 else 0.0
    points += 0.5 if len(LIST_ITEM.findall(text)) >= 2 else 0.0
    return points
