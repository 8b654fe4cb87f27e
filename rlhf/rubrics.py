"""Transparent scoring rubrics: the "gold" judge of simulated annotators, the demo and the tests.

A rubric is a plain function `(prompt_text, response_text) -> float`, higher is better, that a
person can read in one sitting. It stands in for a team's style guide; it is never mistaken for
a person (rankings it makes are stored with origin "simulated").

`concise_helpful` (the default) rewards what annotators of assistant answers ask for and a
135M model can learn: answer the question that was asked (reuse its key words), say it in
15-60 words, finish the last sentence, do not repeat yourself, no filler. It is not "longer is
better": past 60 words the score falls.

A team's own rubric: `--rubric path/to/file.py:function`, same signature.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Callable

from rlhf.errors import RlhfError

Rubric = Callable[[str, str], float]

STOPWORDS = frozenset("""
a an and are as at be but by can could do does for from had has have how i if in into is it its
me my of on or our should so than that the their them then there these they this to was we what
when where which who why will with would you your about also just like more most some such very
""".split())
FILLER = ("as an ai", "i'm sorry", "i am sorry", "i cannot", "i can't help", "great question", "i'm not able",
          "i am not able", "as a language model")
WORD = re.compile(r"[a-z0-9']+")


def content_words(text: str) -> set[str]:
    """Lower-cased words of 4+ letters that are not stopwords: what a question is about."""
    return {w for w in WORD.findall(text.lower()) if len(w) >= 4 and w not in STOPWORDS}


def repeated_trigram_fraction(words: list[str]) -> float:
    """Share of word trigrams that already occurred earlier in the text (0 = no repetition)."""
    grams = [tuple(words[i:i + 3]) for i in range(len(words) - 2)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def concise_helpful(prompt: str, response: str) -> float:
    """Score in about [-3, 2.5]. Each term is one line below; see the module docstring for the why."""
    text = response.strip()
    words = WORD.findall(text.lower())
    if not words:
        return -2.0
    n = len(words)
    asked = content_words(prompt)
    relevance = len(asked & set(words)) / len(asked) if asked else 0.5  # 0..1: reuses the question's key words
    length = 1.0 if 15 <= n <= 60 else (n / 15 if n < 15 else max(0.0, 1.0 - (n - 60) / 60))  # 0..1
    finished = 0.5 if re.search(r"([.!?]|```)[\"')\]]*$", text) else 0.0  # last sentence complete
    repetition = -2.0 * repeated_trigram_fraction(words)  # 0..-2
    filler = -0.5 * sum(phrase in text.lower() for phrase in FILLER)
    return relevance + length + finished + repetition + filler


def length_only(prompt: str, response: str) -> float:
    """A deliberately bad rubric (longer is better), for experiments on length bias."""
    return float(len(response.split()))


RUBRICS: dict[str, Rubric] = {"concise_helpful": concise_helpful, "length_only": length_only}


def load_rubric(spec: str) -> tuple[str, Rubric]:
    """A shipped rubric by name, or a user's `path/to/file.py:function`. Returns (name, function)."""
    if spec in RUBRICS:
        return spec, RUBRICS[spec]
    if ":" not in spec:
        raise RlhfError(f"unknown rubric {spec!r}: expected one of {', '.join(RUBRICS)} or path/to/file.py:function")
    file, _, func = spec.rpartition(":")
    path = Path(file)
    if not path.is_file():
        raise RlhfError(f"--rubric {spec}: no such file {file}")
    mod_spec = importlib.util.spec_from_file_location(f"user_rubric_{path.stem}", path)
    module = importlib.util.module_from_spec(mod_spec)
    try:
        mod_spec.loader.exec_module(module)
    except Exception as e:
        raise RlhfError(f"--rubric {spec}: importing {file} failed: {type(e).__name__}: {e}") from None
    fn = getattr(module, func, None)
    if not callable(fn):
        raise RlhfError(f"--rubric {spec}: {file} has no function {func!r}")
    try:
        float(fn("What is water?", "Water is a liquid."))
    except Exception as e:
        raise RlhfError(f"--rubric {spec}: calling {func}(prompt, response) failed or did not return a number: {e}") from None
    return spec, fn


def prompt_text(messages: list[dict]) -> str:
    """The text a rubric judges a response against: the last user message."""
    return next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
