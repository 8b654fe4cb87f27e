"""Style guide: tone and register. Neutral and professional.

1. No exclamation marks.
2. No first person singular ("I", "I'm", "my", "me"): the answer speaks about the subject, not the writer.
3. No slang or hype ("awesome", "super", "totally", "amazing", "cool", "gonna", "kinda", "lol", emoji).
4. Complete sentences: the answer ends on a finished sentence.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _checks import finished, words  # noqa: E402

SLANG = frozenset("awesome super totally amazing cool gonna wanna kinda sorta lol yeah yep nope stuff ".split()
                  + "incredible fantastic wow basically literally".split())
FIRST_PERSON = frozenset(("i", "i'm", "i've", "i'll", "i'd", "my", "me", "mine", "myself"))
EMOJI = re.compile("[\U0001F300-\U0001FAFF\u2600-\u27BF]")


def score(prompt: str, response: str) -> float:
    text = response.strip()
    if not text:
        return -2.0
    ws = words(text)
    points = 1.0
    points -= 0.5 * min(2, text.count("!"))
    points -= 1.0 if any(w in FIRST_PERSON for w in ws) else 0.0
    points -= 0.5 if any(w in SLANG for w in ws) or EMOJI.search(text) else 0.0
    points += 0.5 if finished(text) else -0.5
    return points
