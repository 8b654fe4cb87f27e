"""Transparent scoring rubrics: the "gold" judge of simulated annotators, the demo and the tests.

A rubric is a plain function `(prompt_text, response_text) -> float`, higher is better, that a
person can read in one sitting. It stands in for a team's style guide; it is never mistaken for
a person (rankings it makes are stored with origin "simulated").

`concise_helpful` (the default) is a checklist, scored in half points the way style guides are
written, of what annotators of assistant answers ask for and a 135M reward model can learn:
say it in 15-60 words, finish the last sentence, do not loop, no filler or refusal phrases, and
do not wander off the question (share at least one key word stem with it). It is not "longer is
better": past 60 words the score falls. Answers the checklist scores equal are ties (dropped
from preference pairs), as a person would rank two answers that pass the same checks.

`concise_relevant` grades the same things continuously and weighs how many of the question's
key words the answer reuses. It is the harder target: a reward model has to match words across
prompt and answer, which the demo's CPU-sized RM (6 layers, ~400 pairs) does at chance level
(measured: 0.70 pairwise accuracy against it overall, 0.45 on pairs that differ only in
relevance). Use it with bigger reward models and more rankings.

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


INSTRUCTION_WORDS = frozenset("""
give tell explain describe please write list keep short brief sentence sentences words word example examples help
need want know good best make simple simply quick quickly
""".split())


def content_words(text: str) -> set[str]:
    """Lower-cased words of 4+ letters that are not stopwords: what a question is about."""
    return {w for w in WORD.findall(text.lower()) if len(w) >= 4 and w not in STOPWORDS}


def key_stems(text: str) -> set[str]:
    """First four letters of the content words, instruction words ("explain", "short") left out.

    >>> sorted(key_stems("Explain briefly why searing a steak works."))
    ['brie', 'sear', 'stea', 'work']
    """
    words = (w.removesuffix("'s") for w in WORD.findall(text.lower()))
    return {w[:4] for w in words if len(w) >= 4 and w not in STOPWORDS and w not in INSTRUCTION_WORDS}


def repeated_trigram_fraction(words: list[str]) -> float:
    """Share of word trigrams that already occurred earlier in the text (0 = no repetition)."""
    grams = [tuple(words[i:i + 3]) for i in range(len(words) - 2)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


FINISHED = re.compile(r"([.!?]|```)[\"')\]]*$")  # the last sentence (or code block) is closed


def checklist(prompt: str, response: str) -> dict[str, float]:
    """The points `concise_helpful` gives, one entry per check (what a reviewer sees)."""
    text = response.strip()
    words = WORD.findall(text.lower())
    n = len(words)
    asked = key_stems(prompt)
    return {
        "length": 1.0 if 15 <= n <= 60 else 0.5 if 8 <= n <= 90 else 0.0,  # concise, but a real answer
        "finished": 1.0 if FINISHED.search(text) else 0.0,  # not cut off mid-sentence
        "loops": -1.0 if repeated_trigram_fraction(words) > 0.1 else 0.0,  # says the same thing again and again
        "filler": -0.5 * sum(phrase in text.lower() for phrase in FILLER) or 0.0,  # "as an AI", "great question", ...
        "off_topic": -0.5 if asked and not asked & key_stems(text) else 0.0,  # none of the question's key words
    }


def concise_helpful(prompt: str, response: str) -> float:
    """Checklist points in half steps, about [-2, 2]; an empty answer is -2. See `checklist` for each check."""
    if not WORD.search(response.lower()):
        return -2.0
    return sum(checklist(prompt, response).values())


def concise_relevant(prompt: str, response: str) -> float:
    """Score in about [-3, 2.5], graded continuously, with relevance = share of the question's key words reused."""
    text = response.strip()
    words = WORD.findall(text.lower())
    if not words:
        return -2.0
    n = len(words)
    asked = content_words(prompt)
    relevance = len(asked & set(words)) / len(asked) if asked else 0.5  # 0..1: reuses the question's key words
    length = 1.0 if 15 <= n <= 60 else (n / 15 if n < 15 else max(0.0, 1.0 - (n - 60) / 60))  # 0..1
    finished = 0.5 if FINISHED.search(text) else 0.0  # last sentence complete
    repetition = -2.0 * repeated_trigram_fraction(words)  # 0..-2
    filler = -0.5 * sum(phrase in text.lower() for phrase in FILLER)
    return relevance + length + finished + repetition + filler


def length_only(prompt: str, response: str) -> float:
    """A deliberately bad rubric (longer is better), for experiments on length bias."""
    return float(len(response.split()))


RUBRICS: dict[str, Rubric] = {"concise_helpful": concise_helpful, "concise_relevant": concise_relevant,
                               "length_only": length_only}


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
