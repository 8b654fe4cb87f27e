"""Style guide (held out: never used to choose settings): brisk.

1. At most two sentences or 35 words, whichever comes first.
2. No question back to the user.
3. No words of filler: "basically", "actually", "really", "just", "very", "quite".
4. End on a finished sentence.
"""

from __future__ import annotations

import re

WORD = re.compile(r"[A-Za-z0-9']+")
FILLER = frozenset("basically actually really just very quite".split())


def score(prompt: str, response: str) -> float:
    text = response.strip()
    words = WORD.findall(text.lower())
    if not words:
        return -2.0
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]
    points = 1.0 if len(sentences) <= 2 and len(words) <= 35 else 0.5 if len(words) <= 50 else 0.0
    points -= 0.5 if "?" in text else 0.0
    points -= 0.5 if any(w in FILLER for w in words) else 0.0
    points += 0.5 if re.search(r"[.!][\"')\]]*\s*$", text) else 0.0
    return points
