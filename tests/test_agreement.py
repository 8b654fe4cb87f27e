"""Agreement numbers against hand-computed cases (ties, missing ratings), bias, adjudication."""

from __future__ import annotations

import math
import random

import krippendorff
import numpy as np
import pytest
from scipy import stats
from sqlalchemy import select

from conftest import run_cli, write_jsonl
from rlhf.review import agreement, reports
from rlhf.data import registry
from rlhf.review import actions as review
from rlhf.review.agreement import RankingRecord
from rlhf.stats import kendall_tau_b, krippendorff_alpha_ordinal, mid_ranks
from rlhf.data.store import session_scope
from rlhf.data.ingest import import_prompts, import_rankings
from rlhf.data.store.models import Ranking, Review, User

R6 = 1 / math.sqrt(6)  # 2 / sqrt(3 * 2) = 0.8165 is 2 * R6


@pytest.fixture
def store(tmp_path, monkeypatch, database):
    """A fresh RLHF_HOME with its own store, SQLite and PostgreSQL (no model needed, so no built-in conversion)."""
    monkeypatch.setenv("RLHF_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


# --------------------------------------------------------------------------- the statistics


def test_mid_ranks_share_tied_places():
    assert mid_ranks([[0], [2, 1], [3]]) == {0: 1.0, 2: 2.5, 1: 2.5, 3: 4.0}
    assert mid_ranks([[1, 0, 2]]) == {1: 2.0, 0: 2.0, 2: 2.0}


def test_kendall_tau_b_hand_cases_with_ties():
    # no ties: perfectly reversed
    assert kendall_tau_b([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # (r0,r1) concordant, (r0,r2) concordant, (r1,r2) tied in y: (2 - 0) / sqrt((3 - 0)(3 - 1))
    assert kendall_tau_b([1, 2, 3], [1, 2.5, 2.5]) == pytest.approx(2 * R6)
    # 4 items, one tie in y: 5 concordant of 6 pairs, 1 tied in y: 5 / sqrt(6 * 5)
    assert kendall_tau_b([1, 2, 3, 4], [1, 2.5, 2.5, 4]) == pytest.approx(5 / math.sqrt(30))
    # a tie on both sides in the same pair: 2 / sqrt(2 * 2)
    assert kendall_tau_b([1, 2.5, 2.5], [1.5, 2.5, 2.5]) == pytest.approx(1.0)
    assert math.isnan(kendall_tau_b([2, 2, 2], [1, 2, 3]))  # one side all tied: undefined


def test_kendall_tau_b_matches_scipy():
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(2, 7)
        x = [rng.choice([1, 2, 2.5, 3]) for _ in range(n)]
        y = [rng.choice([1, 2, 3]) for _ in range(n)]
        ours, ref = kendall_tau_b(x, y), stats.kendalltau(x, y).statistic
        assert (math.isnan(ours) and math.isnan(ref)) or ours == pytest.approx(ref, abs=1e-12)


def test_alpha_ordinal_hand_case_with_missing_rating():
    # coders x units; unit 4 has one rating only (missing) and drops out.
    # pairs: u1 (1,1), u2 (2,3), u3 (3,3): o_11 = 2, o_23 = o_32 = 1, o_33 = 2; n1=2, n2=1, n3=3, n=6.
    # ordinal d(c,k) = sum_{g=c..k} n_g - (n_c + n_k)/2: d12 = 1.5, d23 = 2, d13 = 3.5.
    # alpha = 1 - (n-1) * sum o d^2 / sum n_c n_k d^2 = 1 - 5 * (2 * 4) / (2 * (2*1*2.25 + 2*3*12.25 + 1*3*4)) = 1 - 40/180
    data = [[1, 2, 3, 1], [1, 3, 3, None]]
    assert krippendorff_alpha_ordinal(data) == pytest.approx(7 / 9)
    assert krippendorff.alpha(np.array([[1, 2, 3, 1], [1, 3, 3, np.nan]]), level_of_measurement="ordinal") == pytest.approx(7 / 9)


def test_alpha_ordinal_hand_case_on_tied_ranks():
    # annotator 1: r0 > r1 > r2 (ranks 1, 2, 3); annotator 2: r0 > r1 = r2 (ranks 1, 2.5, 2.5).
    # values 1, 2, 2.5, 3 with n = 2, 1, 2, 1 (n = 6); o(2,2.5) = o(2.5,3) = 1 each way.
    # d2: (1,2) 2.25, (1,2.5) 9, (1,3) 20.25, (2,2.5) 2.25, (2,3) 9, (2.5,3) 2.25
    # observed 5 * (2*2.25 + 2*2.25) = 45; expected 2 * (4.5 + 36 + 40.5 + 4.5 + 9 + 4.5) = 198
    ranks = [mid_ranks([[0], [1], [2]]), mid_ranks([[0], [1, 2]])]
    assert agreement.item_alpha(ranks) == pytest.approx(1 - 45 / 198)  # 17/22 = 0.7727


def test_alpha_ordinal_matches_the_krippendorff_package():
    rng = random.Random(1)
    checked = 0
    for _ in range(300):
        coders, units = rng.randint(2, 5), rng.randint(2, 8)
        data = [[rng.choice([1, 2, 2.5, 3, 4]) if rng.random() > 0.25 else None for _ in range(units)] for _ in range(coders)]
        ours = krippendorff_alpha_ordinal(data)
        if math.isnan(ours):
            continue  # the package raises where alpha is undefined (no pairable unit or one value)
        arr = np.array([[np.nan if v is None else v for v in row] for row in data], dtype=float)
        assert ours == pytest.approx(krippendorff.alpha(arr, level_of_measurement="ordinal"), abs=1e-9)
        checked += 1
    assert checked > 200


# --------------------------------------------------------------------------- the report, by hand


def _rec(rid, prompt, who, responses, order, shown=None, lengths=None):
    return RankingRecord(rid, prompt, who, tuple(responses), tuple(tuple(g) for g in order),
                         tuple(shown) if shown else None, lengths or {})


def three_annotators():
    # prompt 1: X r1>r2>r3, Y r1>r2=r3, Z r3>r2>r1; prompt 2: X and Y agree r4>r5, Z did not rank it (missing)
    return [
        _rec(1, 1, "X", [1, 2, 3], [[0], [1], [2]]),
        _rec(2, 1, "Y", [1, 2, 3], [[0], [1, 2]]),
        _rec(3, 1, "Z", [1, 2, 3], [[2], [1], [0]]),
        _rec(4, 2, "X", [4, 5], [[0], [1]]),
        _rec(5, 2, "Y", [4, 5], [[0], [1]]),
    ]


def test_report_hand_computed():
    rep = agreement.compute(three_annotators(), threshold=0.5)
    item1, item2 = rep.items
    # item 1 tau: X~Y = 2/sqrt(6), X~Z = -1, Y~Z = (0 - 2)/sqrt(3 * 2) -> mean -1/3
    assert item1.mean_tau == pytest.approx((2 * R6 - 1 - 2 * R6) / 3)
    # item 1 alpha by hand: values 1 (x3), 2 (x2), 2.5 (x2), 3 (x2), n = 9, units of 3 ratings (weight 1/2);
    # observed sum o*d2 = 159, expected sum n_c n_k d2 = 1017 -> 1 - 8 * 159 / 1017
    assert item1.alpha == pytest.approx(1 - 8 * 159 / 1017)
    assert item2.alpha == pytest.approx(1.0) and item2.mean_tau == pytest.approx(1.0)
    # consensus = mean rank: r1 5/3, r2 6.5/3, r3 6.5/3
    assert item1.consensus == pytest.approx({1: 5 / 3, 2: 6.5 / 3, 3: 6.5 / 3})
    by = {a.annotator: a for a in rep.annotators}
    assert by["X"].tau_consensus == pytest.approx((2 * R6 + 1) / 2)  # item 1: 2/sqrt(6); item 2: 1
    assert by["Y"].tau_consensus == pytest.approx(1.0)  # ties on r2=r3 on both sides: 2 / sqrt(2 * 2)
    assert by["Z"].tau_consensus == pytest.approx(-2 * R6)  # Z ranked only item 1
    # overall alpha: 5 units, 3 coders, Z missing on r4 and r5: equals the package on that table
    table = np.array([[1, 2, 3, 1, 2], [1, 2.5, 2.5, 1, 2], [3, 2, 1, np.nan, np.nan]])
    assert rep.alpha == pytest.approx(krippendorff.alpha(table, level_of_measurement="ordinal"))
    assert rep.mean_tau == pytest.approx((2 * R6 - 1 - 2 * R6 + 1) / 4, abs=1e-12)  # 3 pairs on item 1, 1 on item 2
    assert [it.prompt_id for it in rep.queue] == [1]  # alpha -0.25 < 0.5
    assert "CONTESTED" in reports.agreement_text(rep)


def test_adjudicated_ranking_is_the_consensus():
    adj = _rec(9, 1, "expert", [1, 2, 3], [[2], [1], [0]])  # the expert sides with Z
    rep = agreement.compute(three_annotators(), threshold=0.5, adjudications={1: adj})
    item1 = rep.items[0]
    assert item1.adjudicated_by == "expert" and rep.queue == [] and [i.prompt_id for i in rep.contested] == [1]
    assert item1.consensus == {1: 3.0, 2: 2.0, 3: 1.0}
    by = {a.annotator: a for a in rep.annotators}
    assert by["Z"].tau_expert == pytest.approx(1.0) and by["X"].tau_expert == pytest.approx(-1.0)
    assert by["Y"].tau_expert == pytest.approx(-2 * R6) and by["X"].adjudicated_items == 1


def test_position_and_length_bias_hand_case():
    recs = [  # annotator P, K = 4 each
        _rec(1, 1, "P", [1, 2, 3, 4], [[0], [1], [2], [3]], shown=[1, 2, 3, 4], lengths={1: 50, 2: 10, 3: 10, 4: 10}),
        _rec(2, 2, "P", [5, 6, 7, 8], [[1], [0], [2], [3]], shown=[6, 5, 7, 8], lengths={5: 100, 6: 9, 7: 9, 8: 9}),
        _rec(3, 3, "P", [9, 10, 11, 12], [[0, 1], [2, 3]], shown=[11, 9, 10, 12], lengths={9: 30, 10: 30, 11: 5, 12: 5}),
        _rec(4, 4, "P", [13, 14, 15, 16], [[3], [0, 1, 2]], shown=[16, 13, 14, 15], lengths={13: 40, 14: 1, 15: 1, 16: 40}),
    ]
    p = agreement.compute(recs).annotators[0]
    # first shown is among the best in rankings 1, 2, 4; chance |best|/K = 1/4, 1/4, 2/4, 1/4
    assert p.position.rate == pytest.approx(3 / 4) and p.position.chance == pytest.approx(1.25 / 4)
    assert p.position.z == pytest.approx((3 - 1.25) / math.sqrt(3 * 0.1875 + 0.25))
    # the longest wins: 1, 0, 1 (both longest are best), 1/2 (one of two tied longest is best)
    assert p.length.rate == pytest.approx(2.5 / 4) and p.length.chance == pytest.approx(1.25 / 4)


# --------------------------------------------------------------------------- the store: adjudication


def seed_contested(tmp_path):
    prompts = [{"id": "q1", "messages": [{"role": "user", "content": "How do I boil an egg?"}], "tags": ["cooking"]},
               {"id": "q2", "messages": [{"role": "user", "content": "What is rust?"}], "tags": ["science"]}]
    resp1 = ["Boil it for 9 minutes, then cool it in cold water.", "Put it in water.", "Eggs are food."]
    resp2 = ["Iron oxide formed when iron meets water and oxygen.", "A colour."]
    rankings = [
        {"prompt_id": "q1", "responses": resp1, "order": [[0], [1], [2]], "annotator": "ann1"},
        {"prompt_id": "q1", "responses": resp1, "order": [[0], [1, 2]], "annotator": "ann2"},
        {"prompt_id": "q1", "responses": resp1, "order": [[2], [1], [0]], "annotator": "ann3"},
        {"prompt_id": "q2", "responses": resp2, "order": [[0], [1]], "annotator": "ann1"},
        {"prompt_id": "q2", "responses": resp2, "order": [[0], [1]], "annotator": "ann2"},
    ]
    with session_scope() as s:
        import_prompts(s, write_jsonl(tmp_path / "p.jsonl", prompts))
        import_rankings(s, write_jsonl(tmp_path / "r.jsonl", rankings))
        s.add(User(name="eve", role="expert"))
    return resp1


def test_store_report_and_adjudication(store, tmp_path):
    resp1 = seed_contested(tmp_path)
    with session_scope() as s:
        rep = agreement.report(s, threshold=0.5)
        assert [it.external_id for it in rep.queue] == ["q1"]
        assert rep.items[0].alpha == pytest.approx(1 - 8 * 159 / 1017)  # the same numbers as the hand case
        q1 = rep.queue[0].prompt_id
        with pytest.raises(PermissionError):
            review.adjudicate(s, "ann1", q1, [[0], [1], [2]], "I know best")
        with pytest.raises(review.RlhfError, match="reason"):
            review.adjudicate(s, "eve", q1, [[0], [1], [2]], "  ")
    with session_scope() as s:
        ranking = review.adjudicate(s, "eve", q1, [[0], [1], [2]], "the 9-minute answer is correct and complete")
        rid = ranking.id
    with session_scope() as s:
        r = s.get(Ranking, rid)
        assert (r.origin, r.status, s.get(User, r.annotator_id).name, r.order) == ("human", "approved", "eve", [[0], [1], [2]])
        rev = s.scalar(select(Review).where(Review.item_type == "ranking", Review.item_id == rid))
        assert (rev.verdict, rev.reviewer_name, rev.reason) == ("adjudicate", "eve", "the 9-minute answer is correct and complete")
        assert rev.created_at is not None and len(rev.payload["superseded"]) == 3
        contributing = s.scalars(select(Ranking).where(Ranking.id.in_(rev.payload["annotator_rankings"]))).all()
        assert {c.status for c in contributing} == {"superseded"}  # kept, not deleted
        assert s.scalar(select(Ranking).where(Ranking.id == 1)) is not None
        rep = agreement.report(s, threshold=0.5)
        assert rep.queue == [] and rep.items[0].adjudicated_by == "eve"
        by = {a.annotator: a for a in rep.annotators}
        assert by["ann1"].tau_expert == pytest.approx(1.0) and by["ann3"].tau_expert == pytest.approx(-1.0)
        assert "eve" not in by  # an adjudication is an expert decision, not an annotation
        # the consensus replaces the contested rankings in training data, even with --include-pending
        dv, _ = registry.snapshot(s, "preferences", registry.SnapshotOptions(include_pending=True))
        rows = registry.load(s, dv.ref).to_list()
        q1_rows = [row for row in rows if row["prompt_id"] == "q1"]
        assert {row["annotator"] for row in q1_rows} == {"eve"} and len(q1_rows) == 3
        assert q1_rows[0]["chosen"][0]["content"] == resp1[0]


def test_cli_agreement_prints_the_table(store, tmp_path):
    seed_contested(tmp_path)
    out = run_cli("agreement", "--threshold", "0.5", "--plot", str(tmp_path / "agreement.png"))
    assert out.returncode == 0, out.stderr
    assert "Krippendorff's alpha (ordinal) = " in out.stdout and "Kendall tau-b" in out.stdout
    assert "q1" in out.stdout and "CONTESTED" in out.stdout and "Adjudication queue (alpha < 0.5" in out.stdout
    assert (tmp_path / "agreement.png").read_bytes()[:4] == b"\x89PNG"


def test_adjudication_page_handlers(store, tmp_path, monkeypatch):
    from labeling_app import review_handlers as rp
    from rlhf.data import accounts as auth

    seed_contested(tmp_path)
    monkeypatch.setenv("RLHF_PASSWORD_HASH", "fast")
    with session_scope() as s:
        auth.set_password(s, "eve", "expert-password")
        auth.set_password(s, "ann1", "annotator-password")
    me = rp.ReviewSession("eve")
    v = rp.adjudication_queue(me, 0.5)
    assert [row[0] for row in v.rows] == ["q1"] and v.k == 3 and v.prompt_id is not None
    assert [row[0] for row in v.annotator_ranks] == ["ann1", "ann2", "ann3"]
    assert v.annotator_ranks[1][1:] == [1.0, 2.5, 2.5]  # ann2 tied the last two
    with pytest.raises(PermissionError):
        rp.adjudicate_submit(rp.ReviewSession("ann1"), v.prompt_id, ["1", "2", "3"], "mine")
    with pytest.raises(review.RlhfError, match="missing C"):
        rp.adjudicate_submit(me, v.prompt_id, ["1", "2", None], "why")
    after = rp.adjudicate_submit(me, v.prompt_id, ["1", "2", "2"], "the first is correct, the others equally poor")
    assert after.rows == [] and "consensus" in after.message
    with session_scope() as s:
        rev = s.scalar(select(Review).where(Review.verdict == "adjudicate"))
        assert rev.reviewer_name == "eve" and rev.payload["order"] == [[0], [1, 2]]
