"""Style guide: specific to the question.

1. Name the subject: the first sentence uses a key term of the question.
2. Be concrete: give a number, a unit, a named example or an "e.g." / "for example".
3. No vague filler: "it depends", "various", "many things", "in general", "a lot of", "and so on", "etc.".
4. Finish the last sentence.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _checks import finished, key_terms, sentences, words  # noqa: E402

VAGUE = ("it depends", "various", "many things", "in general", "generally speaking", "a lot of", "and so on", "etc",
         "several factors", "some things")
CONCRETE = re.compile(r"\d|\bfor example\b|\be\.g\.|\bsuch as\b|\bfor instance\b", re.I)


def score(prompt: str, response: str) -> float:
    text = response.strip()
    if not text:
        return -2.0
    first = sentences(text)[0]
    asked = key_terms(prompt)
    points = 0.0
    points += 1.0 if asked and asked & {w[:5] for w in words(first)} else 0.0
    points += 0.5 if CONCRETE.search(text) else 0.0
    lower = text.lower()
    points -= 0.5 * min(2, sum(v in lower for v in VAGUE))
    points += 0.5 if finished(text) else 0.0
    return points
