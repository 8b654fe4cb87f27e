"""Style guide: a length band. Say it in 25 to 45 words, and end on a finished sentence.

Full marks inside the band, half marks within 15-24 or 46-60 words, none outside; half a point for a
finished last sentence. Longer is not better.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _checks import finished, words  # noqa: E402


def score(prompt: str, response: str) -> float:
    n = len(words(response))
    if n == 0:
        return -2.0
    band = 1.0 if 25 <= n <= 45 else 0.5 if 15 <= n <= 60 else 0.0
    return band + (0.5 if finished(response) else 0.0)
