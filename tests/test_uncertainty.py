"""The uncertainty queue's priorities (issue 16 part 1): the margin and ensemble-disagreement rules, every open rank
item scored and stored once (upserted) on both databases, `rlhf queue prioritize`, and the admin page's job kind."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from labeling_app import queue
from rlhf.data import jobs
from rlhf.data.priorities import Priority, open_rank_items, read_priorities, write_priorities
from rlhf.data.registry import register_model
from rlhf.data.store import session_scope
from rlhf.data.store.app_models import LabelItem
from rlhf.data.store.loop_models import ItemPriority
from rlhf.errors import RlhfError
from rlhf.train import uncertainty

from app_support import candidates, home, set_settings  # noqa: F401 (home: fixture)
from conftest import run_cli


def test_small_margins_come_first():
    sure, torn, middle = [0.0, 3.0, 6.0], [0.0, 0.05, 6.0], [0.0, 1.0, 2.0]
    order = sorted({"sure": sure, "torn": torn, "middle": middle}.items(),
                   key=lambda kv: -uncertainty.item_priority([kv[1]])[0])
    assert [k for k, _ in order] == ["torn", "middle", "sure"]
    assert uncertainty.item_priority([torn]) == (pytest.approx(-0.05), {"margin": pytest.approx(0.05)})


def test_an_ensemble_ranks_by_disagreement_then_margin():
    agree_close = [[0.0, 0.1, 0.2], [0.0, 0.1, 0.2]]  # sure of the order, tiny margins: an RM alone would pick it
    disagree = [[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]]
    one_swap_wide, one_swap_close = [[0.0, 5.0, 9.0], [4.0, 0.0, 9.0]], [[0.0, 0.5, 9.0], [0.4, 0.0, 9.0]]  # mean margins 0.5, 0.05
    p = {k: uncertainty.item_priority(v)[0] for k, v in
         dict(agree_close=agree_close, disagree=disagree, wide=one_swap_wide, close=one_swap_close).items()}
    assert p["disagree"] > p["close"] > p["wide"] > p["agree_close"]
    assert uncertainty.item_priority(disagree)[1]["disagreement"] == 1.0
    assert uncertainty.item_priority(one_swap_wide)[1]["disagreement"] == pytest.approx(1 / 3)


@pytest.fixture
def rms(home, tmp_path):
    """Two random-init tiny reward models registered as rm@v1 and rm@v2 (different seeds: they disagree)."""
    from rlhf.train.modeling import random_model

    with session_scope() as db:
        for seed in (1, 2):
            path = random_model("tiny", tmp_path / f"rm{seed}", seed=seed, num_labels=1)
            register_model(db, name="rm", stage="rm", base="tiny", path=str(path), dataset_versions=[], config={},
                           metrics={}, seed=seed)
    return home


def rank_items() -> list[int]:
    candidates("p1", 4)
    candidates("p2", 3)
    candidates("p3", 2)
    with session_scope() as db:
        queue.sync_items(db)
        return list(db.scalars(select(LabelItem.id).where(LabelItem.kind == "rank").order_by(LabelItem.id)))


def test_prioritize_scores_every_open_item_and_upserts(rms):
    items = rank_items()
    report = uncertainty.prioritize(["rm@latest"], batch_items=2, progress=False)
    assert (report.models, report.items, report.responses) == (["rm@v2"], 3, 9)

    # what is stored is what the RM says of each item's candidates, read afresh
    _, net, tok = uncertainty.load_reward_model("rm@v2")
    with session_scope() as db:
        opened = open_rank_items(db)
        rows = {r.item_id: r for r in db.scalars(select(ItemPriority))}
    assert sorted(rows) == items
    for it in opened:
        expect = uncertainty.score_items(net, tok, [it])[0]
        row = rows[it.item_id]
        assert row.model_ref == "rm@v2"
        assert [row.scores["responses"][str(r)][0] for r in it.response_ids] == pytest.approx(expect, abs=1e-5)
        assert row.priority == pytest.approx(uncertainty.margin_priority(expect), abs=1e-5)

    # an ensemble run replaces each item's row (one per item), prioritized by disagreement
    report = uncertainty.prioritize(["rm@v1", "rm@v2"], progress=False)
    with session_scope() as db:
        assert db.scalar(select(func.count()).select_from(ItemPriority)) == 3
        rows = list(db.scalars(select(ItemPriority)))
    assert {r.model_ref for r in rows} == {"rm@v1,rm@v2"}
    assert all(len(v) == 2 for r in rows for v in r.scores["responses"].values())
    assert all(0.0 <= r.scores["disagreement"] <= 1.0 and r.priority >= r.scores["disagreement"] for r in rows)


def test_only_open_items_are_scored(rms):
    items = rank_items()
    set_settings(rank_overlap=1)
    with session_scope() as db:
        db.get(LabelItem, items[0]).done_count = 1  # ranked by enough people: no longer open
    assert uncertainty.prioritize(["rm@v1"], progress=False).items == 2
    with session_scope() as db:
        assert set(read_priorities(db)) == set(items[1:])


def test_write_priorities_refuses_an_item_twice_and_writes_nothing(home):
    with session_scope() as db:
        queue.sync_items(db)  # write items only; priorities are keyed by any label item id
        a, b = db.scalars(select(LabelItem.id).limit(2)).all()
    with pytest.raises(RlhfError, match="appears twice"):
        with session_scope() as db:
            write_priorities(db, [Priority(a, "rm@v1", 0.0, {}), Priority(a, "rm@v1", 1.0, {})])
    with session_scope() as db:
        assert write_priorities(db, [Priority(a, "rm@v1", -0.5, {}), Priority(b, "rm@v1", -0.1, {})]) == 2
        assert read_priorities(db) == {a: -0.5, b: -0.1}


def test_the_cli_and_the_admin_job(rms):
    rank_items()
    out = run_cli("queue", "prioritize", "--model", "rm@v1,rm@v2")
    assert out.returncode == 0, out.stderr
    assert "3 rank items (9 candidates) prioritized with rm@v1, rm@v2" in out.stdout
    assert out.stdout.strip().splitlines()[-1].startswith('RESULT {"prioritize": ')
    bad = run_cli("queue", "prioritize", "--model", "nosuch@v3")
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and len(bad.stderr.strip().splitlines()) == 1

    assert jobs.check_argv("prioritize", ["--model", "rm@v1,rm@v2"]) == ["--model", "rm@v1,rm@v2"]
    with pytest.raises(RlhfError, match="expected one of --model, --limit"):
        jobs.check_argv("prioritize", ["--prompts", "prompts@v1"])
    with session_scope() as db:
        job_id = jobs.start(db, "prioritize", ["--model", "rm@v1"], "root").id
    from test_jobs import finished

    job = finished(job_id)
    assert (job.status, job.exit_code) == ("done", 0), jobs.log_tail(job, 20)
    assert "$ rlhf queue prioritize --model rm@v1" in jobs.log_tail(job, 50)
    with session_scope() as db:
        assert {r.model_ref for r in db.scalars(select(ItemPriority))} == {"rm@v1"}


def test_the_admin_page_starts_the_job_and_it_scores_candidates_generated_since_the_last_refresh(rms):
    from labeling_app import admin
    from test_jobs import finished

    from app_support import me

    candidates("p1", 4)
    candidates("p2", 3)  # stored as `rlhf generate` stores them; the app has not refreshed its queue since
    with session_scope() as db:
        assert db.scalar(select(func.count()).select_from(LabelItem).where(LabelItem.kind == "rank")) == 0
    msg = admin.admin_prioritize(me("root"), " rm@v1,rm@v2 ")
    assert msg.startswith("started: rlhf queue prioritize --model rm@v1,rm@v2 (log: ")
    assert msg.endswith("the queue policy is random: choose uncertainty in Project settings for these priorities to count")
    job = finished(1)
    assert (job.status, job.exit_code) == ("done", 0), jobs.log_tail(job, 20)
    with session_scope() as db:
        rank_ids = set(db.scalars(select(LabelItem.id).where(LabelItem.kind == "rank")))
        assert len(rank_ids) == 2 and set(read_priorities(db)) == rank_ids
        assert {r.model_ref for r in db.scalars(select(ItemPriority))} == {"rm@v1,rm@v2"}
    assert admin.admin_jobs(me("root")).startswith("[done] job 1 by root, ")

    set_settings(queue_policy="uncertainty")
    msg = admin.admin_prioritize(me("root"), "")  # empty: the latest reward model
    assert msg.startswith("started: rlhf queue prioritize --model rm@latest (log: ") and msg.endswith("to follow it")
    with pytest.raises(RlhfError, match="model: expected a name like"):
        admin.admin_prioritize(me("root"), "--help")
    assert finished(2).status == "done"
