"""The loop recipe (stages/loop.py) with every step stubbed by a canned RESULT: which references reach which step in
each round (the RM warm-started from the last RM, PPO from the last policy), the per-round table, people mode's stop.
The real run on a tiny model is the `slow` test at the end."""

from __future__ import annotations

import json

import pytest

from stages import loop, tables
from test_demo import option

SUMMARY = {"reward": 0.5, "rubric": 1.5, "kl": 2.0, "length": 30.0, "eos": 0.9}


@pytest.fixture
def calls(monkeypatch, tmp_path):
    """Every command the loop runs, in order; stages answer with canned RESULTs that count versions up."""
    seen: list[list[str]] = []
    versions = {"rm": 0, "ppo": 0, "preferences": 0}

    def step(title, *cmd):
        seen.append(list(cmd))
        module = cmd[1] if cmd[0] == "-m" else ""
        if module == "stages.sft":
            return {"sft": {"model": "sft@v7"}}
        if module == "stages.rm":
            versions["rm"] += 1
            return {"rm": {"model": f"rm@v{versions['rm']}", "accuracy": 0.7, "accuracy_rubric": 0.8}}
        if module == "stages.ppo":
            versions["ppo"] += 1
            n = versions["ppo"]
            # the held-out answers' rubric scores as the stage stores them: round 2 wins 3 prompts of 4, ties one;
            # round 3 wins 2, ties 1, loses 1 against round 1
            rubric = {1: [1.0, 1.0, 1.0, 1.0], 2: [2.0, 2.0, 2.0, 1.0], 3: [2.0, 2.0, 1.0, 0.0]}[n]
            samples = tmp_path / f"ppo{n}_heldout_samples.json"
            samples.write_text(json.dumps([{"prompt": f"q{i}", "sft": "", "ppo": "", "rubric_sft": 0.0, "rubric_ppo": r}
                                           for i, r in enumerate(rubric)]))
            return {"ppo": {"model": f"ppo@v{n}", "sft": {**SUMMARY, "rubric": 1.0}, "ppo": SUMMARY,
                            "win_rate": 0.6, "win_rate_ci": [0.5, 0.7], "seconds": 2.0, "samples": str(samples)}}
        if "kl" in cmd:
            return {"kl": {"kl": 0.25 * versions["ppo"]}}
        return {}

    def stdout_of(*cmd):
        seen.append(list(cmd))
        if cmd[-1] in ("prompts", "sft"):
            return {"prompts": "prompts@v5", "sft": "sft@v3"}[cmd[-1]]
        versions["preferences"] += 1
        return f"preferences@v{versions['preferences']}"

    monkeypatch.setattr(loop, "step", step)
    monkeypatch.setattr(loop, "stdout_of", stdout_of)
    monkeypatch.setenv("RLHF_HOME", str(tmp_path))
    return seen


def every(calls, *words) -> list[list[str]]:
    return [c for c in calls if all(w in c for w in words)]


def test_each_round_starts_from_the_last_policy_and_reward_model(calls, capsys):
    result = loop.main(["--rounds", "3", "--rubric", "concise_helpful", "--seed", "4", "--ppo-updates", "5"])
    gens, sims, rms, ppos = (every(calls, "generate"), every(calls, "simulate", "rank"), every(calls, "stages.rm"),
                             every(calls, "stages.ppo"))
    assert len(gens) == len(sims) == len(rms) == len(ppos) == 3
    policies = ["sft@v7", "ppo@v1", "ppo@v2"]
    assert [option(c, "--model") for c in gens] == policies  # candidates from the latest policy
    assert all(option(c, "--prompts") == "prompts@v5" and option(c, "--split") == "train" for c in gens)
    assert [option(c, "--model-version") for c in sims] == policies and all("--approve" in c for c in sims)
    assert [option(c, "--seed") for c in sims] == ["4", "5", "6"]
    assert not any("--annotators" in c or "--overlap" in c for c in sims)  # one annotator: new candidates get ranked
    assert [option(c, "--model") for c in rms] == ["sft@v7", "rm@v1", "rm@v2"]  # warm start: the last RM
    assert [option(c, "--dataset") for c in rms] == ["preferences@v1", "preferences@v2", "preferences@v3"]
    assert [option(c, "--policy") for c in ppos] == policies
    assert [option(c, "--reward-model") for c in ppos] == ["rm@v1", "rm@v2", "rm@v3"]
    assert all(option(c, "--updates") == "5" and option(c, "--rubric") == "concise_helpful" for c in ppos)
    kls = every(calls, "round", "kl")  # the drift of each round's policy from the first one
    assert [(option(c, "--policy"), option(c, "--reference")) for c in kls] == [(f"ppo@v{i}", "sft@v7") for i in (1, 2, 3)]
    # the order inside a round: generate -> rank -> snapshot -> RM -> PPO
    first = [i for i, c in enumerate(calls) if c in (gens[1], sims[1], rms[1], ppos[1])]
    assert first == sorted(first) and calls.index(["-m", "rlhf.cli", "registry", "snapshot", "preferences",
                                                   "--include-simulated"]) < calls.index(rms[0])
    out = capsys.readouterr().out
    assert json.loads(out.strip().splitlines()[-1][len("RESULT "):]) == result
    assert [r["policy"] for r in result["rounds"]] == ["ppo@v1", "ppo@v2", "ppo@v3"]
    assert result["rounds"][2] | {"seconds": None} == {
        "round": 3, "rm": "rm@v3", "policy": "ppo@v3", "rm_accuracy": 0.7, "rm_accuracy_rubric": 0.8, "reward": 0.5,
        "rubric": 1.5, "rubric_before": 1.0, "kl_to_previous": 2.0, "kl_to_first": 0.75, "length": 30.0, "win_rate_vs_previous": 0.6,
        "win_rate_ci": [0.5, 0.7], "seconds": None, "win_rate_vs_first": 0.625,  # (2 + 0.5) / 4
        "win_rate_vs_first_ci": pytest.approx([0.2194, 0.9081], abs=1e-4)}
    assert [r["win_rate_vs_first"] for r in result["rounds"]] == [0.5, 0.875, 0.625]  # round 1 ties itself
    assert "=== 3 rounds from sft@v7" in out and "1.000 -> 1.500" in out
    assert "round 3 over round 1 on the same prompts: win rate 0.625" in out


def test_round_one_is_compared_only_on_the_same_prompts(tmp_path):
    def stored(name, prompts, scores):
        path = tmp_path / name
        path.write_text(json.dumps([{"prompt": p, "rubric_ppo": r} for p, r in zip(prompts, scores)]))
        return str(path)

    rows = [{"round": 1}, {"round": 2}, {"round": 3}]
    tables.versus_first(rows, [stored("a", ["x", "y"], [1, 1]), stored("b", ["y", "x"], [2, 2]), None])
    assert [r["win_rate_vs_first"] for r in rows] == [0.5, None, None]  # other prompts, or no file: no number


def test_people_rank_in_the_app_and_the_loop_continues_from_the_snapshot(calls, capsys):
    waiting = loop.main(["--rounds", "2", "--policy", "sft@v2", "--prompts", "prompts@v1"])["waiting"]
    assert not every(calls, "simulate") and not every(calls, "stages.rm") and not every(calls, "stages.sft")
    assert waiting["continue"] == ("just loop --rounds 2 --policy sft@v2 --reward-model sft@v2 --prompts prompts@v1 "
                                   "--start-at preferences")
    calls.clear()
    loop.main(waiting["continue"].split()[2:] + ["--rounds", "1"])
    assert not every(calls, "generate")  # round 1's candidates were ranked in the app
    assert every(calls, "snapshot", "preferences")[0][-1] == "preferences"  # people's rankings only
    assert option(every(calls, "stages.rm")[0], "--model") == "sft@v2"
    assert "--rubric" not in every(calls, "stages.ppo")[0]
    calls.clear()
    loop.main(["--rounds", "1", "--policy", "sft@v2", "--prompts", "prompts@v1", "--rubric", "length_only",
               "--kl-prompts", "0"])
    assert not every(calls, "round", "kl")


def test_latest_references_are_refused(calls):
    with pytest.raises(SystemExit):
        loop.main(["--policy", "ppo@latest", "--rubric", "concise_helpful"])
    assert calls == []


def test_the_rm_stage_warm_starts_from_the_last_reward_model(workspace, tmp_path, tiny_model):
    """Round 2's RM starts from round 1's (`--model rm@v1`, a sequence classifier already): it scores the held-out
    pairs as rm@v1 did before training further, and its lineage names rm@v1."""
    from rlhf.data.registry import get_model_version
    from rlhf.data.store import session_scope
    from stages import rm as stage
    from test_rm import train_toy_rm

    first, ref = train_toy_rm(tmp_path, tiny_model)
    second = stage.main(["--model", first["model"], "--mode", "lora", "--dataset", ref, "--epochs", "1",
                         "--report-to", "none", "--max-length", "64", "--keep-layers", "0", "--seed", "0"])
    assert second["model"] == "rm@v2"
    assert second["accuracy_before"] == pytest.approx(first["accuracy"])  # the same eval split, rm@v1's head and weights
    assert second["accuracy"] >= first["accuracy"] - 0.1
    with session_scope() as s:
        assert get_model_version(s, "rm@v2").base == "rm@v1"


@pytest.mark.slow
def test_two_rounds_on_a_tiny_model(workspace, tmp_path, tiny_model):
    """The real commands, two rounds, a 2-layer random model: every model registered with its lineage."""
    from conftest import write_jsonl
    from rlhf.data.registry import get_model_version, register_model
    from rlhf.data.store import session_scope

    prompts = [{"id": f"q{i}", "messages": [{"role": "user", "content": f"Name a colour, number {i}."}],
                "tags": ["heldout"] if i < 2 else []} for i in range(8)]
    assert loop.stdout_of  # the real steps
    loop.step("import", "-m", "rlhf.cli", "import", "prompts", str(write_jsonl(tmp_path / "p.jsonl", prompts)))
    prompts_ref = loop.stdout_of("-m", "rlhf.cli", "registry", "snapshot", "prompts")
    with session_scope() as s:
        register_model(s, name="sft", stage="sft", base="tiny", path=str(tiny_model), dataset_versions=[], config={},
                       metrics={}, seed=0)
    result = loop.main(["--rounds", "2", "--rubric", "concise_helpful", "--policy", "sft@v1", "--prompts", prompts_ref,
                        "--k", "3", "--candidate-tokens", "8", "--ppo-updates", "1",
                        "--extra-rm", "--keep-layers 0 --max-length 64 --eval-fraction 0.3 --report-to none",
                        "--extra-ppo", "--batch-size 4 --max-new-tokens 8 --eval-batch-size 2 --report-to none"])
    rounds = result["rounds"]
    assert [(r["rm"], r["policy"]) for r in rounds] == [("rm@v1", "ppo@v1"), ("rm@v2", "ppo@v2")]
    with session_scope() as s:
        lineage = {ref: (mv.base, list(mv.dataset_versions)) for ref in ("rm@v1", "rm@v2", "ppo@v1", "ppo@v2")
                   for mv in [get_model_version(s, ref)]}
    assert lineage["rm@v1"][0] == "sft@v1" and lineage["rm@v2"][0] == "rm@v1"
    assert lineage["ppo@v1"] == ("sft@v1", [prompts_ref]) and lineage["ppo@v2"] == ("ppo@v1", [prompts_ref])
    assert lineage["rm@v1"][1] != lineage["rm@v2"][1]  # round 2's snapshot holds round 2's rankings too
    assert all(r["kl_to_first"] is not None for r in rounds) and rounds[0]["kl_to_first"] == pytest.approx(
        rounds[0]["kl_to_previous"], abs=0.5)  # round 1's previous policy is the first one (sampled: an estimate)
    for r in rounds:  # the PPO stage's win rate over the previous policy, inside its own 95% interval
        lo, hi = r["win_rate_ci"]
        assert 0.0 <= lo <= r["win_rate_vs_previous"] <= hi <= 1.0 and hi - lo > 0.05, r


def test_kl_to_the_first_policy(workspace, tmp_path, tiny_model):
    """`rlhf round kl`: 0 for a policy against itself, positive against another model; the RESULT line carries it."""
    from conftest import run_cli, write_jsonl
    from rlhf.data.registry import register_model, snapshot
    from rlhf.data.ingest import import_prompts
    from rlhf.data.store import session_scope
    from rlhf.train.drift import kl_to_reference
    from rlhf.train.modeling import random_model

    other = random_model("tiny", tmp_path / "other", seed=5)
    prompts = [{"id": f"q{i}", "messages": [{"role": "user", "content": f"Count to {i}."}], "tags": ["heldout"]}
               for i in range(3)]
    with session_scope() as s:
        import_prompts(s, write_jsonl(tmp_path / "p.jsonl", prompts))
        for path in (tiny_model, other):
            register_model(s, name="sft", stage="sft", base="tiny", path=str(path), dataset_versions=[], config={},
                           metrics={}, seed=0)
        ref = snapshot(s, "prompts")[0].ref
    same = kl_to_reference("sft@v1", "sft@v1", ref, max_new_tokens=6)
    assert same["prompts"] == 3 and same["kl"] == pytest.approx(0.0, abs=1e-5)
    out = run_cli("round", "kl", "--policy", "sft@v1", "--reference", "sft@v2", "--prompts", ref, "--max-new-tokens", "6")
    assert out.returncode == 0, out.stderr
    kl = json.loads(out.stdout.strip().splitlines()[-1][len("RESULT "):])["kl"]
    assert (kl["policy"], kl["reference"], kl["prompts"]) == ("sft@v1", "sft@v2", 3) and kl["kl"] > 0.1
