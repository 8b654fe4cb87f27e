"""The shipped rubrics: each check of `concise_helpful` on a hand-made answer, user rubrics, the harder graded one."""

from __future__ import annotations

import pytest

from rlhf.errors import RlhfError
from rlhf.rubrics import checklist, concise_helpful, concise_relevant, key_stems, load_rubric

Q = "Give me three tips for searing a steak."
GOOD = "Dry the steak, heat the pan until it smokes, and leave the meat alone for two minutes so a crust forms."


def test_a_good_answer_passes_every_check():
    assert checklist(Q, GOOD) == {"length": 1.0, "finished": 1.0, "loops": 0.0, "filler": 0.0, "off_topic": 0.0}
    assert concise_helpful(Q, GOOD) == 2.0


@pytest.mark.parametrize("answer, check, points", [
    ("Dry the steak well.", "length", 0.0),                                  # 4 words: no real answer
    ("Dry the steak well and use a very hot pan.", "length", 0.5),           # 10 words: short
    ("Steak " + "and more words about the pan " * 3, "length", 1.0),         # 19 words, in the band
    (" ".join(["steak"] + ["word%d" % i for i in range(99)]) + ".", "length", 0.0),  # 100 words: too long
    ("Dry the steak, heat the pan until it smokes, and leave the", "finished", 0.0),  # cut off mid-sentence
    ("Use this:\n```python\nsear(steak)\n```", "finished", 1.0),             # a closed code block counts
    ("Sear the steak hot. " * 5, "loops", -1.0),                             # the same sentence again and again
    ("Great question! As an AI I like a hot pan for the steak.", "filler", -1.0),
    ("Bake bread at 220 C for thirty minutes until golden and hollow when tapped underneath.", "off_topic", -0.5),
])
def test_each_check(answer, check, points):
    assert checklist(Q, answer)[check] == points


def test_scores_are_half_points_and_not_longer_is_better():
    long_answer = GOOD + " " + " ".join(f"Then consider detail number {i} about the steak." for i in range(20))
    assert concise_helpful(Q, long_answer) < concise_helpful(Q, GOOD)
    for answer in (GOOD, long_answer, "Steak.", "", "as an ai as an ai"):
        assert (2 * concise_helpful(Q, answer)).is_integer()
    assert concise_helpful(Q, "   ") == -2.0


def test_key_stems_ignore_instruction_words_and_match_word_forms():
    assert key_stems(Q) == {"sear", "stea", "thre", "tips"}
    assert key_stems("Seared steaks") & key_stems(Q) == {"sear", "stea"}


def test_graded_rubric_rewards_reusing_the_questions_words():
    on = "Searing a steak works best in a very hot dry pan, with the steak patted dry and left still until a crust forms."
    off = "Cooking meat works best in a very hot dry pan, with the meat patted dry and left still until a crust forms."
    assert concise_relevant(Q, on) > concise_relevant(Q, off)


def test_load_rubric_by_name_and_from_a_users_file(tmp_path):
    assert load_rubric("concise_helpful")[1] is concise_helpful
    f = tmp_path / "style.py"
    f.write_text("def short(prompt, response):\n    return -len(response)\n")
    name, fn = load_rubric(f"{f}:short")
    assert fn("q", "abc") == -3
    with pytest.raises(RlhfError, match="no function 'nope'"):
        load_rubric(f"{f}:nope")
    with pytest.raises(RlhfError, match="unknown rubric"):
        load_rubric("nope")
