"""Many processes: the shipped accelerate configs load, `--processes 2` runs SFT and RM as one gloo group on the
CPU with the same per-step losses as one process at the same global batch, and a run killed with SIGKILL in
the middle resumes to exactly the numbers of a run that was never stopped, registering one version.

Tolerance of the 1- vs 2-process comparison: 1e-5 absolute on losses near 10 (fp32; measured ~1e-6: DDP sums
the two processes' gradients in another order than one process does, and the processes use 1 thread each).
"""

from __future__ import annotations

import shutil
import sqlite3

import pytest

from rlhf.errors import RlhfError
from rlhf.train import distributed, resume
from tests.stage_runs import kill_mid_run, module_home, registered, run_dir_of, run_dirs, step_losses

TOL = 1e-5
FP32 = ["--report-to", "none", "--precision", "fp32", "--logging-steps", "1"]
# SFT: 24 training rows; one process at batch 14 = two processes at batch 7 (steps of 7+7 rows, then 7+3)
SFT = ["--epochs", "3", "--lr", "1e-2", "--samples", "1", "--sample-tokens", "4", "--max-length", "64",
       "--checkpoint-every", "2", *FP32]
# RM: 72 training pairs; one process at batch 8 = two processes at batch 4 (9 steps of 4+4 pairs)
RM = ["--epochs", "1", "--lr", "2e-3", "--max-length", "64", "--warmup-steps", "2", "--checkpoint-every", "3", *FP32]


@pytest.fixture(scope="module")
def home(tmp_path_factory, builtin_cache):
    yield from module_home(tmp_path_factory, builtin_cache, "distributed")


@pytest.fixture(scope="module")
def sft_ref(home):
    from tests.test_sft import sft_snapshot

    return sft_snapshot(home)


@pytest.fixture(scope="module")
def rm_ref(home):
    from tests.test_rm import _toy_preferences

    return _toy_preferences(home)


@pytest.fixture(scope="module")
def sft_one(home, sft_ref, tiny_model):
    """The 1-process SFT run every other SFT run here is compared with."""
    from stages import sft

    result = sft.main(["--model", str(tiny_model), "--dataset", sft_ref, "--batch-size", "14", *SFT])
    return result, step_losses(run_dir_of(home, "sft", result["model"]))


@pytest.fixture(scope="module")
def rm_one(home, rm_ref, tiny_model):
    from stages import rm

    result = rm.main(["--model", str(tiny_model), "--dataset", rm_ref, "--batch-size", "8", *RM])
    return result, step_losses(run_dir_of(home, "rm", result["model"]))


# --- shipped configs and the launch command ---------------------------------------------------------


def test_shipped_accelerate_configs_load_with_accelerate():
    """accelerate's config loader, its launch checks and the plugin built from the launch environment accept each."""
    names = sorted(p.name for p in distributed.CONFIGS.glob("*.yaml"))
    assert names == ["ddp.yaml", "deepspeed-zero2.yaml", "deepspeed-zero3.yaml", "fsdp2.yaml"]
    found = {p.stem: distributed.check_config(p, processes=2) for p in distributed.CONFIGS.glob("*.yaml")}
    assert found["ddp"]["distributed_type"] == "MULTI_GPU"
    assert found["fsdp2"]["fsdp"] == {"version": 2, "state_dict_type": "FULL_STATE_DICT", "reshard_after_forward": True}
    for stage in (2, 3):
        ds = found[f"deepspeed-zero{stage}"]["deepspeed"]
        assert ds["zero_optimization"]["stage"] == stage
        assert ds["train_micro_batch_size_per_gpu"] == "auto" and ds["gradient_accumulation_steps"] == "auto"


def test_deepspeed_configs_pass_deepspeed_schema():
    pytest.importorskip("deepspeed", reason="DeepSpeed is the optional extra `.[deepspeed]` (GPU machines); "
                                            "without it only accelerate's own checks run")
    for stage in (2, 3):
        found = distributed.check_config(distributed.CONFIGS / f"deepspeed-zero{stage}.yaml", processes=2)
        assert found["deepspeed_schema"] == "ok"
    with pytest.raises(RlhfError, match="DeepSpeed rejects the config"):
        distributed.check_deepspeed_schema({"zero_optimization": {"stage": 7}})


def test_bad_config_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_GPU\nnum_procs: 2\n")
    with pytest.raises(RlhfError, match=f"--accelerate-config {bad}: not an accelerate config: .*num_procs"):
        distributed.check_config(bad)
    with pytest.raises(RlhfError, match="no such file .*shipped: ddp.yaml"):
        distributed.load_config(tmp_path / "missing.yaml")


def test_launch_passes_every_other_option_through():
    argv = ["--config", "data/configs/sft.yaml", "--processes", "2", "--epochs", "1", "--name", "x"]
    processes, config, rest = distributed.split_options(argv)
    cmd = distributed.launch_command("stages.sft", rest, processes, config)
    assert cmd[cmd.index("--config_file") + 1] == str(distributed.DEFAULT_CONFIG)
    assert cmd[cmd.index("--num_processes") + 1] == "2"
    assert cmd[-8:] == ["-m", "stages.sft", "--config", "data/configs/sft.yaml", "--epochs", "1", "--name", "x"]
    with pytest.raises(RlhfError, match="--processes 0: must be at least 1"):
        distributed.split_options(["--processes", "0"])


def test_uneven_last_step_that_would_hang_is_refused():
    distributed.check_even_split(24, 7, 2)  # 7+7, then 7+3: every process has a batch in every step
    distributed.check_even_split(5, 8, 1)
    with pytest.raises(RlhfError, match="make 5 batches, not a multiple of 2 processes.*--batch-size 3 or 5"):
        distributed.check_even_split(18, 4, 2)


# --- two processes = one process ---------------------------------------------------------------------


def check_one_run_added(home, stage, before_runs, before_versions, result):
    """Exactly one new run folder, holding the result, and exactly one new registered version."""
    new = run_dirs(home, stage) - before_runs
    assert new == {run_dir_of(home, stage, result["model"])}
    assert registered(stage) == sorted(before_versions + [result["model"]])


def check_same_steps(one, two):
    assert [s for s, _, _ in one] == [s for s, _, _ in two] and one
    for (step, a, tokens_a), (_, b, tokens_b) in zip(one, two):
        assert abs(a - b) <= TOL, (step, a, b)
        assert tokens_a == tokens_b  # the same rows were seen: none repeated, none dropped


def test_sft_two_processes_match_one(home, sft_ref, tiny_model, sft_one):
    from stages import sft

    one, one_steps = sft_one
    before_runs, before_versions = run_dirs(home, "sft"), registered("sft")
    two = sft.main(["--model", str(tiny_model), "--dataset", sft_ref, "--batch-size", "7", "--processes", "2", *SFT,
                    "--report-to", "trackio"])  # tracking does not change training: compared with a run without
    assert one["processes"] == 1 and two["processes"] == 2
    check_one_run_added(home, "sft", before_runs, before_versions, two)
    with sqlite3.connect(home / "trackio" / "rlhf.db") as db:  # one trackio run, named after the one run folder
        assert db.execute("SELECT run_name FROM configs").fetchall() == [(run_dir_of(home, "sft", two["model"]).name,)]
    check_same_steps(one_steps, step_losses(run_dir_of(home, "sft", two["model"])))
    assert len(one_steps) == 6
    assert abs(one["train_loss"] - two["train_loss"]) <= TOL
    assert abs(one["eval_loss_after"] - two["eval_loss_after"]) <= TOL and two["train_rows"] == 24


def test_rm_two_processes_match_one(home, rm_ref, tiny_model, rm_one):
    from stages import rm

    one, one_steps = rm_one
    before_runs, before_versions = run_dirs(home, "rm"), registered("rm")
    two = rm.main(["--model", str(tiny_model), "--dataset", rm_ref, "--batch-size", "4", "--processes", "2", *RM])
    check_one_run_added(home, "rm", before_runs, before_versions, two)
    check_same_steps(one_steps, step_losses(run_dir_of(home, "rm", two["model"])))
    assert len(one_steps) == 9 and two["train_pairs"] == 72
    assert abs(one["accuracy"] - two["accuracy"]) <= TOL


# --- killed with SIGKILL in the middle, resumed ------------------------------------------------------


def add_half_checkpoint(run_dir):
    """What a SIGKILL during the Trainer's save leaves: a newer checkpoint folder with a file cut short and no
    completion mark (the Trainer writes its files in place, one by one)."""
    done = resume.latest(run_dir)
    half = done.parent / f"{resume.PREFIX}{resume.step_of(resume.checkpoints(run_dir)[-1]) + 1}"
    shutil.copytree(done, half)
    (half / resume.MARKER).unlink()
    opt = half / "optimizer.pt"
    opt.write_bytes(opt.read_bytes()[: opt.stat().st_size // 2])
    return half


@pytest.mark.parametrize("stage", ["sft", "rm"])
def test_killed_run_resumes_to_the_same_numbers(stage, request, home, tiny_model, tmp_path):
    """SIGKILL after the first complete checkpoint, a cut-short checkpoint after it; --resume skips that one, trains
    the remaining steps and ends exactly where the uninterrupted run ended, with one registered version."""
    import importlib

    recipe = importlib.import_module(f"stages.{stage}")
    one, one_steps = request.getfixturevalue(f"{stage}_one")
    data = request.getfixturevalue(f"{stage}_ref")
    args = ["--model", str(tiny_model), "--dataset", data, "--batch-size", "14" if stage == "sft" else "8",
            *(SFT if stage == "sft" else RM)]
    before_versions = registered(stage)
    run = kill_mid_run(home, stage, args, f"trainer/checkpoint-*/{resume.MARKER}", tmp_path / "killed.log")
    half = add_half_checkpoint(run)
    assert registered(stage) == before_versions

    again = recipe.main(["--resume", str(run)])
    assert not half.exists() and list(half.parent.glob(f".orphan-{half.name}-*"))  # moved aside, not read, not deleted
    assert registered(stage) == sorted(before_versions + [again["model"]])
    # every step's loss, exactly (trl's running token count restarts at a resume, so it is not compared here)
    assert [(step, loss) for step, loss, _ in step_losses(run)] == [(step, loss) for step, loss, _ in one_steps]
    same = ("train_loss", "eval_loss_after") if stage == "sft" else ("train_loss", "accuracy", "ece", "length_corr")
    assert {k: again[k] for k in same} == {k: one[k] for k in same}
    with pytest.raises(RlhfError, match="already finished and registered"):
        recipe.main(["--resume", str(run)])


# --- PPO ---------------------------------------------------------------------------------------------

def test_ppo_two_processes_match_one(home, tiny_model):
    """Per update, the 2-process run (batch 4 per process) has the 1-process run's (batch 8) KL, reward and losses
    (rlhf/train/ppo/ranks.py: per-episode sampling seeds, one global minibatch permutation, losses over the global
    token count, global statistics), and the same sampled responses.

    Tolerance: TOL (1e-5, fp32) on values of order 0.01-1; measured worst 4.8e-7 (objective/kl; losses <= 3.9e-7,
    reward 1.5e-8, lengths exact; the whole module's run, 3.6e-7 alone): DDP sums the two processes' gradients in
    another order than one process's backward, and sampling, scoring and training run on batches of other shapes (4
    rows and other left padding instead of 8), rounding differences that 4 optimizer steps carry forward. A response
    that differed would show as a difference of order 0.1, far above it.
    """
    import json

    from rlhf.data import registry as reg
    from rlhf.data.ingest import import_prompts
    from rlhf.data.store import session_scope
    from rlhf.train.modeling import random_model
    from stages import ppo
    from tests.conftest import write_jsonl
    from tests.test_ppo_stage import HELDOUT, TRAIN

    # ids of their own: the module's store already holds the SFT and RM tests' prompts (they train here too)
    rows = [{"id": f"ppo-t{i}", "messages": [{"role": "user", "content": q}]} for i, q in enumerate(TRAIN + TRAIN[:2])]
    rows += [{"id": f"ppo-h{i}", "messages": [{"role": "user", "content": q}], "tags": ["heldout"]}
             for i, q in enumerate(HELDOUT)]
    with session_scope() as s:
        import_prompts(s, write_jsonl(home / "ppo-prompts.jsonl", rows))
        prompts = reg.snapshot(s, "prompts")[0].ref
    rm_path = random_model("tiny", home / "ppo-rm", seed=1, num_labels=1)
    args = ["--policy", str(tiny_model), "--reward-model", str(rm_path), "--prompts", prompts, "--updates", "3",
            "--num-minibatches", "2", "--ppo-epochs", "2", "--max-new-tokens", "6", "--eval-batch-size", "3",
            "--report-to", "none", "--threads", "1", "--sample-dtype", "float32"]
    before_runs, before_versions = run_dirs(home, "ppo"), registered("ppo")
    one = ppo.main([*args, "--batch-size", "8"])
    two = ppo.main([*args, "--batch-size", "4", "--processes", "2"])
    assert registered("ppo") == sorted(before_versions + [one["model"], two["model"]])
    assert len(run_dirs(home, "ppo") - before_runs) == 2
    keys = ("objective/kl", "objective/reward", "loss/policy", "loss/value", "val/mean_response_length")
    history = [[json.loads(line) for line in (run_dir_of(home, "ppo", r["model"]) / "metrics.jsonl").read_text().splitlines()]
               for r in (one, two)]
    assert [h["update"] for h in history[0]] == [h["update"] for h in history[1]] == [1, 2, 3]
    worst = {k: max(abs(a[k] - b[k]) for a, b in zip(*history)) for k in keys}
    print("PPO 1 vs 2 processes, worst difference per metric:", worst)
    for a, b in zip(*history):
        for k in keys:
            assert abs(a[k] - b[k]) <= TOL, (a["update"], k, a[k], b[k])
    # the first update's logged samples: global episodes 0-3, on the main process in both runs
    samples = [[json.loads(line)["response"] for line in (run_dir_of(home, "ppo", r["model"]) / "samples.jsonl").read_text()
                .splitlines()] for r in (one, two)]
    assert samples[0] == samples[1] and len(samples[0]) == 4
