"""Simulated annotators: calibrated noise, storage as simulated (never people), re-runs, user rubrics."""

from __future__ import annotations

import random

import pytest

from rlhf.errors import RlhfError
from rlhf.train.simulate import (annotator_name, calibrate_sigma, expected_flip_rate, flips, measured_flip_rate, noisy_order,
                           rubric_of)
from tests.conftest import run_cli, write_jsonl


def test_noise_zero_is_the_rubric_order_with_ties():
    rng = random.Random(0)
    assert noisy_order([0.2, 1.5, 0.2, -1.0], 0.0, rng) == [[1], [0, 2], [3]]
    assert noisy_order([1.0, 1.0], 0.3, rng) == [[0, 1]]  # all tied: stays one group, no pairs
    with pytest.raises(RlhfError, match="noise"):
        noisy_order([1.0, 2.0], 0.7, rng)


def test_sigma_calibration_is_exact_in_expectation():
    scores = [0.1, 0.5, 0.55, 2.0, 2.4]
    for p in (0.05, 0.1, 0.25, 0.4):
        assert expected_flip_rate(scores, calibrate_sigma(scores, p)) == pytest.approx(p, abs=1e-4)


@pytest.mark.parametrize("noise", [0.0, 0.1, 0.25])
def test_measured_flip_rate_matches_noise(noise):
    """Over many random K=2..9 rankings, the share of the rubric's pairs that come out flipped is P (within 0.015)."""
    rng = random.Random(1)
    rankings = []
    for _ in range(1500):
        k = rng.randint(2, 9)
        scores = [round(rng.gauss(0, 1), 1) for _ in range(k)]  # rounding makes some ties
        rankings.append((scores, noisy_order(scores, noise, rng)))
    rate = measured_flip_rate(rankings)
    assert rate == pytest.approx(noise, abs=0.015)
    # ties of the rubric stay ties, and close calls flip more often than clear ones
    for scores, order in rankings:
        pos = {i: g for g, grp in enumerate(order) for i in grp}
        assert all(pos[i] == pos[j] for i in range(len(scores)) for j in range(len(scores)) if scores[i] == scores[j])
    if noise:  # within a ranking, close calls flip more often than clear ones: best vs worst rarely flips
        extreme = [_flipped(o, s.index(max(s)), s.index(min(s))) for s, o in rankings if len(s) >= 6]
        assert sum(extreme) / len(extreme) < noise / 2


def _flipped(order, better, worse) -> bool:
    pos = {i: g for g, grp in enumerate(order) for i in grp}
    return pos[better] > pos[worse]


def test_annotator_names():
    assert annotator_name("concise_helpful", 2) == "sim:concise_helpful:2"
    assert rubric_of("sim:concise_helpful:2") == "concise_helpful"
    assert rubric_of("sim:my/rub.py:score:0") == "my/rub.py:score"
    assert rubric_of("alice") is None
    assert flips([1.0, 0.0], [[1], [0]]) == (1, 1)


def _seed_store(tmp_path, n_prompts=6, k=4):
    from rlhf.data.store import session_scope
    from rlhf.data.ingest import import_prompts
    from rlhf.data.records import add_response
    from rlhf.data.store.models import Prompt

    prompts = [{"id": f"q{i}", "messages": [{"role": "user", "content": f"How do I bake bread number {i}?"}]}
               for i in range(n_prompts)]
    answers = ["Bake bread at 220 C for 30 minutes after proofing the dough twice until it doubles in size.",
               "Bread.", "I'm sorry, as an AI I cannot bake bread bread bread bread bread bread bread.",
               "Mix flour, water, salt and yeast, knead, let the dough rise, shape it and bake the bread until golden and hollow"]
    with session_scope() as s:
        import_prompts(s, write_jsonl(tmp_path / "p.jsonl", prompts))
        for p in s.query(Prompt).all():
            for a in answers[:k]:
                add_response(s, p, a, origin="model", model_version="sft@v1")
        add_response(s, s.query(Prompt).first(), "Another model's answer about bread.", origin="model", model_version="other@v1")


def test_simulate_stores_simulated_rankings(workspace, tmp_path):
    from rlhf.data import registry
    from rlhf.train.simulate import simulate_rankings
    from rlhf.data.store import session_scope
    from rlhf.data.store.models import Ranking, User

    _seed_store(tmp_path)
    report = simulate_rankings("concise_helpful", 0.0, model_version="sft@v1", annotators=2, overlap=2, progress=False)
    # rubric points: 2.0 (concise, finished), 1.0 ("Bread.": too short), -0.5 (filler, loops), 1.0 (cut off):
    # the two 1.0 answers tie, so each ranking of 4 gives 6 - 1 = 5 pairs
    assert report.added == 12 and report.flipped == 0 and report.pairs == 12 * 5
    with session_scope() as s:
        rankings = s.query(Ranking).all()
        users = {u.id: u for u in s.query(User).all()}
        assert {r.origin for r in rankings} == {"simulated"} and {r.status for r in rankings} == {"pending"}
        assert all(users[r.annotator_id].simulated and users[r.annotator_id].password_hash is None for r in rankings)
        assert {users[r.annotator_id].name for r in rankings} == {"sim:concise_helpful:0", "sim:concise_helpful:1"}
        assert all(len(r.response_ids) == 4 for r in rankings)  # only sft@v1's responses
        assert rankings[0].order == [[0], [1, 3], [2]]  # the concise, finished, on-topic answer is best; a tie
    again = simulate_rankings("concise_helpful", 0.0, model_version="sft@v1", annotators=2, overlap=2, progress=False)
    assert again.added == 0 and again.already_ranked == 12
    # snapshots leave simulated (and pending) rankings out unless asked
    with session_scope() as s, pytest.raises(RlhfError, match="nothing to snapshot"):
        registry.snapshot(s, "preferences")
    with session_scope() as s:
        dv, _ = registry.snapshot(s, "preferences", registry.SnapshotOptions(include_pending=True, include_simulated=True))
        assert dv.row_count == 60


def test_the_next_rounds_candidates_are_ranked_again(workspace, tmp_path):
    """A prompt the simulated annotator ranked before is ranked again when its candidates change (the next round's
    model answered it); the same candidates are not ranked twice."""
    from rlhf.data.records import add_response
    from rlhf.data.store import session_scope
    from rlhf.data.store.models import Prompt
    from rlhf.train.simulate import simulate_rankings

    _seed_store(tmp_path, n_prompts=3, k=3)
    first = simulate_rankings("concise_helpful", 0.0, model_version="sft@v1", progress=False)
    assert first.added == 3
    with session_scope() as s:
        for p in s.query(Prompt).all():
            for text in ("Knead, proof and bake the dough at 220 C.", "Bake it."):
                add_response(s, p, f"{text} ({p.external_id})", origin="model", model_version="ppo@v1")
    second = simulate_rankings("concise_helpful", 0.0, model_version="ppo@v1", progress=False)
    assert second.added == 3 and second.already_ranked == 0
    again = simulate_rankings("concise_helpful", 0.0, model_version="ppo@v1", progress=False)
    assert again.added == 0 and again.already_ranked == 3


def test_simulate_cli_approve_and_user_rubric(workspace, tmp_path):
    _seed_store(tmp_path, n_prompts=3, k=3)  # q0 also has another model's answer: 2 + 2 + 3 pairs with "Bread."
    rubric = tmp_path / "style.py"
    rubric.write_text("def shortest(prompt, response):\n    return -len(response)\n")
    out = run_cli("simulate", "rank", "--rubric", f"{rubric}:shortest", "--noise", "0", "--approve")
    assert out.returncode == 0, out.stderr
    assert '"rankings_added": 3' in out.stdout and '"status": "approved"' in out.stdout
    from rlhf.data import registry
    from rlhf.data.store import session_scope

    with session_scope() as s:
        dv, _ = registry.snapshot(s, "preferences", registry.SnapshotOptions(include_simulated=True))
        ds = registry.load(s, dv.ref)
    with_bread = [r for r in ds if "Bread." in (r["chosen"][0]["content"], r["rejected"][0]["content"])]
    assert len(with_bread) == 7 and all(r["chosen"][0]["content"] == "Bread." for r in with_bread)
    assert {r["annotator"] for r in ds} == {f"sim:{rubric}:shortest:0"}
    bad = run_cli("simulate", "rank", "--rubric", f"{tmp_path}/nope.py:f", "--noise", "0.1")
    assert bad.returncode == 2 and "no such file" in bad.stderr and "Traceback" not in bad.stderr
