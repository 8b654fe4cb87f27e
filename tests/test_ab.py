"""Blind A/B sessions: the Wilson interval and kappa against hand computations, blind sides, reports."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import select

from conftest import run_cli, write_jsonl
from rlhf import stats
from rlhf.review import ab, reports
from rlhf.data import registry
from rlhf.errors import RlhfError
from rlhf.data.store import session_scope
from rlhf.data.ingest import import_prompts
from rlhf.data.store.models import Response, User
from rlhf.data.store.review_models import ABItem, ABJudgement, ABSession
from rlhf.data.registry import register_model

Z = 1.959963984540054


# --------------------------------------------------------------------------- the statistics, by hand


def test_wilson_interval_against_the_formula():
    # 8 of 10: p = 0.8, z^2/n = 0.384146, centre = (0.8 + 0.192073) / 1.384146 = 0.716739,
    # half = 1.959964 / 1.384146 * sqrt(0.016 + 0.009604) = 0.226579 -> [0.4902, 0.9433] (the textbook value)
    lo, hi = stats.wilson_interval(8, 10)
    assert (lo, hi) == (pytest.approx(0.490162, abs=1e-6), pytest.approx(0.943318, abs=1e-6))
    # the formula written out, for another n
    p, n = 13 / 20, 20
    centre = (p + Z**2 / (2 * n)) / (1 + Z**2 / n)
    half = Z / (1 + Z**2 / n) * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n**2))
    assert stats.wilson_interval(13, 20) == (pytest.approx(centre - half), pytest.approx(centre + half))
    # 0 of 10: [0, z^2/n / (1 + z^2/n)] = [0, 0.2775]
    assert stats.wilson_interval(0, 10) == (pytest.approx(0.0, abs=1e-12), pytest.approx(0.384146 / 1.384146, abs=1e-6))
    assert all(math.isnan(x) for x in stats.wilson_interval(0, 0))


def test_tally_counts_ties_half():
    t = ab.Tally()
    for w in ["b"] * 7 + ["tie"] * 2 + ["a"]:
        t.add(w)
    assert (t.n, t.b, t.a, t.tie) == (10, 7, 1, 2)
    assert t.win_rate == pytest.approx(0.8)  # (7 + 2/2) / 10
    assert t.interval == stats.wilson_interval(8, 10)


def test_cohen_kappa_hand_case():
    j1 = ["a", "a", "a", "b", "b", "b", "tie", "tie", "a", "b"]
    j2 = ["a", "a", "b", "b", "b", "a", "tie", "a", "a", "b"]
    # p_o = 7/10; marginals j1 (a .4, b .4, tie .2), j2 (a .5, b .4, tie .1): p_e = .2 + .16 + .02 = .38
    assert stats.cohen_kappa(j1, j2) == pytest.approx((0.7 - 0.38) / (1 - 0.38))
    assert stats.cohen_kappa(["a", "b"], ["a", "b"]) == pytest.approx(1.0)
    assert math.isnan(stats.cohen_kappa(["a", "a"], ["a", "a"]))  # chance agreement 1: undefined


# --------------------------------------------------------------------------- sessions on tiny models


@pytest.fixture(scope="module")
def tiny_b(tmp_path_factory, tiny_model):
    """A second tiny model (another seed), so A and B answer differently."""
    from rlhf.train.modeling import random_model

    return random_model("tiny", tmp_path_factory.mktemp("tiny-b") / "model", seed=1)


PROMPTS = [{"id": f"p{i}", "messages": [{"role": "user", "content": f"Question number {i} about {tag}?"}], "tags": [tag]}
           for i, tag in enumerate(["cooking", "cooking", "science", "science", "travel", "travel", "cooking", "science"])]


@pytest.fixture
def models(workspace, tmp_path, tiny_model, tiny_b):
    """tiny@v1 (A) and tiny@v2 (B) registered, prompts@v1 of 8 prompts, an expert, a second expert, an annotator."""
    with session_scope() as s:
        import_prompts(s, write_jsonl(tmp_path / "p.jsonl", PROMPTS))
        registry.snapshot(s, "prompts")
        for path in (tiny_model, tiny_b):
            register_model(s, name="tiny", stage="sft", base="random", path=str(path), dataset_versions=[], config={},
                           metrics={}, seed=0)
        s.add_all([User(name="eve", role="expert"), User(name="max", role="expert"), User(name="ann", role="annotator")])
    return workspace


def test_session_generates_blind_randomized_pairs(models):
    with session_scope() as s:
        sess = ab.create_session(s, "tiny@v1", "tiny@latest", "prompts@latest", ab.Generation(max_new_tokens=6), progress=False)
        sid = sess.id
    with session_scope() as s:
        sess = s.get(ABSession, sid)
        assert (sess.model_a, sess.model_b, sess.prompts_ref) == ("tiny@v1", "tiny@v2", "prompts@v1")  # pinned
        items = s.scalars(select(ABItem).where(ABItem.session_id == sid)).all()
        assert len(items) == 8 and sorted(it.position for it in items) == list(range(8))
        assert {it.a_on_left for it in items} == {True, False}  # sides drawn per item
        for it in items:
            ra, rb = s.get(Response, it.response_a_id), s.get(Response, it.response_b_id)
            assert (ra.model_version, rb.model_version, ra.origin) == ("tiny@v1", "tiny@v2", "model")
            assert ra.generation["max_new_tokens"] == 6 and ra.generation["temperature"] == 0.0
        # what a judge sees: a prompt and two texts, nothing naming a model
        pair = ab.next_pair(s, sid, "eve")
        assert pair.number == 1 and pair.total == 8 and pair.judged == 0
        assert "tiny" not in repr(pair) and "model" not in set(vars(pair))
        item = s.get(ABItem, pair.item_id)
        a_text, b_text = s.get(Response, item.response_a_id).text, s.get(Response, item.response_b_id).text
        assert (pair.left, pair.right) == ((a_text, b_text) if item.a_on_left else (b_text, a_text))
        # "A" is the left answer on screen: it resolves to model a only when model a sits on the left
        j = ab.judge(s, "eve", pair.item_id, "A", "clearer")
        assert (j.choice, j.winner, j.reason, j.origin) == ("left", "a" if item.a_on_left else "b", "clearer", "human")
        assert ab.next_pair(s, sid, "eve").item_id != pair.item_id
        with pytest.raises(PermissionError):
            ab.judge(s, "ann", pair.item_id, "B")
        with pytest.raises(PermissionError):
            ab.next_pair(s, sid, "ann")
        with pytest.raises(RlhfError, match="expected A, B or tie"):
            ab.judge(s, "eve", pair.item_id, "left-ish")


def test_simulated_expert_and_report(models, tmp_path):
    with session_scope() as s:
        sid = ab.create_session(s, "tiny@v1", "tiny@v2", "prompts@v1", ab.Generation(max_new_tokens=4), limit=6,
                                progress=False).id
    with session_scope() as s:
        name, added = ab.judge_simulated(s, sid, "length_only", tie_margin=0.0)
        assert (name, added) == ("rubric:length_only", 6)
        assert ab.judge_simulated(s, sid, "length_only") == (name, 0)  # nothing left to judge
        judgements = s.scalars(select(ABJudgement)).all()
        assert {j.origin for j in judgements} == {"simulated"} and all("rubric length_only" in j.reason for j in judgements)
        # the rubric's pick, checked against the stored answers: length_only prefers the longer text
        for j in judgements:
            item = s.get(ABItem, j.item_id)
            la, lb = (len(s.get(Response, r).text.split()) for r in (item.response_a_id, item.response_b_id))
            assert j.winner == ("tie" if la == lb else "a" if la > lb else "b")
        # a human expert judges the first three items the same way as the rubric on two, differently on one
        items = sorted(s.scalars(select(ABItem).where(ABItem.session_id == sid)), key=lambda it: it.position)[:3]
        sim = {j.item_id: j.winner for j in judgements}
        flip = {"a": "b", "b": "tie", "tie": "a"}
        for k, it in enumerate(items):
            want = sim[it.id] if k < 2 else flip[sim[it.id]]
            choice = "tie" if want == "tie" else ("left" if (want == "a") == it.a_on_left else "right")
            ab.judge(s, "max", it.id, choice)
        rep = ab.session_report(s, sid)
        expected = ab.Tally()
        for w in list(sim.values()) + [sim[items[0].id], sim[items[1].id], flip[sim[items[2].id]]]:
            expected.add(w)
        assert (rep.overall.a, rep.overall.b, rep.overall.tie) == (expected.a, expected.b, expected.tie)
        assert rep.overall.n == 9 and rep.items == 6 and rep.judged_items == 6
        assert rep.overall.interval == stats.wilson_interval(expected.b + expected.tie / 2, 9)
        assert set(rep.by_tag) <= {"cooking", "science", "travel"} and sum(t.n for t in rep.by_tag.values()) == 9
        assert rep.simulated_judges == ["rubric:length_only"]
        (agr,) = rep.agreement
        assert (agr.judge_1, agr.judge_2, agr.shared, agr.percent) == ("max", "rubric:length_only", 3, pytest.approx(2 / 3))
        md, png, _ = reports.write_ab_report(s, sid, tmp_path / "out" / "ab.md")
    text = md.read_text()
    assert "# Blind A/B review session" in text and "Wilson" in text and "## By tag" in text
    assert "Cohen's kappa" in text and "rubric:length_only (simulated)" in text and "![win rate of B](ab.png)" in text
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_cli_create_judge_report(models, tmp_path):
    out = run_cli("review-session", "create", "--a", "tiny@v1", "--b", "tiny@v2", "--prompts", "prompts@v1",
                  "--max-new-tokens", "4", "--limit", "4", "--temperature", "0.7", "--seed", "3")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ab#1"
    out = run_cli("review-session", "judge-simulated", "ab#1", "--rubric", "concise_helpful")
    assert out.returncode == 0, out.stderr
    assert "rubric:concise_helpful: 4 judgements added; B win rate" in out.stdout
    out = run_cli("review-session", "report", "1", "--out", str(tmp_path / "report.md"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "report.md").read_text().startswith("# Blind A/B review session ab#1")
    assert (tmp_path / "report.png").exists()
    assert "sampling, temperature 0.7" in (tmp_path / "report.md").read_text()
    out = run_cli("review-session", "report", "ab#9")
    assert out.returncode == 2 and "no review session 'ab#9'; known: ab#1" in out.stderr


# --------------------------------------------------------------------------- the reveal rule (issue 13)


def test_open_report_is_blind_to_judges_until_an_admin_closes_the_session(workspace, tmp_path):
    """While open, a judge's report shows their own tally and no model names; an admin's, and everyone's after close, all."""
    with session_scope() as s:
        import_prompts(s, write_jsonl(tmp_path / "p.jsonl", PROMPTS[:3]))
        registry.snapshot(s, "prompts")
        s.add_all([User(name="eve", role="expert"), User(name="max", role="expert"), User(name="root", role="admin")])
        s.flush()
        sid = ab.create_session(s, "sft@v1", "ppo@v1", "prompts@v1", answers=(["a0", "a1", "a2"], ["b0", "b1", "b2"])).id
        for judge, choice in (("eve", "A"), ("max", "B")):
            for _ in range(3):
                pair = ab.next_pair(s, sid, judge)
                ab.judge(s, judge, pair.item_id, choice)
    with session_scope() as s:
        blind = ab.session_report(s, sid, viewer="eve")
        assert not blind.revealed and list(blind.by_judge) == ["eve"] and blind.overall.n == 3 and not blind.agreement
        md = reports.ab_markdown(blind)
        assert "sft@v1" not in md and "ppo@v1" not in md and "max" not in md and ab.HIDDEN in md
        full = ab.session_report(s, sid, viewer="root")  # an admin sees everything, open or not
        assert full.revealed and list(full.by_judge) == ["eve", "max"] and full.model_b == "ppo@v1" and full.overall.n == 6
        assert ab.session_report(s, sid).revealed  # no viewer: the CLI, run by whoever holds the machine
        with pytest.raises(PermissionError, match="needs the admin role"):
            ab.close_session(s, sid, by="eve")
    out = run_cli("review-session", "close", f"ab#{sid}")
    assert out.returncode == 0 and out.stdout.startswith(f"ab#{sid} closed "), out.stderr
    assert "was already closed" in run_cli("review-session", "close", str(sid)).stdout  # idempotent
    assert "closed" in run_cli("review-session", "list").stdout
    with session_scope() as s:
        after = ab.session_report(s, sid, viewer="eve")
        assert after.revealed and list(after.by_judge) == ["eve", "max"] and after.model_a == "sft@v1"
        assert ab.next_pair(s, sid, "max") is None
        item = s.scalars(select(ABItem).where(ABItem.session_id == sid)).first()
        with pytest.raises(RlhfError, match="takes no more judgements"):
            ab.judge(s, "eve", item.id, "tie")
