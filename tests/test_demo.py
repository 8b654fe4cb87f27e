"""The demo pipeline (stages/demo.py) with every step stubbed by a canned RESULT: which references reach which step,
what the final RESULT carries, and that a failing step stops the demo. The real run is the `slow` tier
(tests/test_slow_builtin.py)."""

from __future__ import annotations

import json

import pytest

from stages import demo

CANNED = {
    "stages.sft": {"sft": {"model": "sft@v7", "dataset": "sft@v3", "eval_loss_before": 2.5, "eval_loss_after": 2.2,
                           "seconds": 1.0}},
    "stages.rm": {"rm": {"model": "rm@v4", "dataset": "preferences@v2", "accuracy": 0.8, "accuracy_before": 0.4,
                         "accuracy_rubric": 0.9, "ece": 0.05, "length_corr": 0.1, "seconds": 1.0}},
}
SUMMARY = {"reward": 0.5, "rubric": 1.5, "kl": 2.0, "length": 30.0, "eos": 0.9}
SFT_SUMMARY = {"reward": 0.0, "rubric": 1.0, "kl": 0.0, "length": 40.0, "eos": 0.5}


def policy_result(cmd: list[str]) -> dict:
    key = "dpo" if "stages.dpo" in cmd else "ppo"
    name = "dpo" if key == "dpo" else ("rloo" if any("rloo.yaml" in c for c in cmd) else "ppo")
    return {key: {"model": f"{name}@v1", "sft": SFT_SUMMARY, key: SUMMARY, "win_rate": 0.7, "win_rate_ci": [0.55, 0.82],
                  "seconds_per_update": 5.0, "seconds": 3.0}}


@pytest.fixture
def calls(monkeypatch, tmp_path):
    """Every command the demo runs, in order; steps answer with canned RESULT lines, snapshots with fixed refs."""
    seen: list[list[str]] = []
    snapshots = {"prompts": "prompts@v5", "sft": "sft@v3", "preferences": "preferences@v2"}

    def step(title, *cmd):
        seen.append(list(cmd))
        module = cmd[1] if cmd[0] == "-m" else ""
        if module in CANNED:
            return CANNED[module]
        if module in ("stages.ppo", "stages.dpo"):
            return policy_result(list(cmd))
        return {}

    def stdout_of(*cmd):
        seen.append(list(cmd))
        return snapshots[cmd[-1] if cmd[-1] in snapshots else cmd[-2]]

    monkeypatch.setattr(demo, "step", step)
    monkeypatch.setattr(demo, "stdout_of", stdout_of)
    monkeypatch.setenv("RLHF_HOME", str(tmp_path))
    return seen


def option(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def find(calls: list[list[str]], *words: str) -> list[str]:
    return next(c for c in calls if all(w in c for w in words))


def test_each_step_gets_the_references_the_previous_steps_made(calls, capsys):
    result = demo.main(["--seed", "3"])
    sft = find(calls, "stages.sft")
    assert option(sft, "--dataset") == "sft@v3" and option(sft, "--seed") == "3"
    gen = find(calls, "generate")
    assert option(gen, "--model") == "sft@v7" and option(gen, "--prompts") == "prompts@v5"
    sim = find(calls, "simulate", "rank")
    assert option(sim, "--model-version") == "sft@v7" and "--approve" in sim
    assert find(calls, "snapshot", "preferences")[-1] == "--include-simulated"
    rm = find(calls, "stages.rm")
    assert option(rm, "--model") == "sft@v7" and option(rm, "--dataset") == "preferences@v2"
    ppo = find(calls, "stages.ppo")
    assert (option(ppo, "--policy"), option(ppo, "--reward-model"), option(ppo, "--prompts")) == ("sft@v7", "rm@v4", "prompts@v5")
    assert not any("stages.dpo" in c for c in calls)  # the default method is PPO only
    out = capsys.readouterr().out
    last = json.loads(out.strip().splitlines()[-1][len("RESULT "):])
    assert last == result
    assert result["rm"]["model"] == "rm@v4" and result["ppo"]["model"] == "ppo@v1" and result["ppo"]["win_rate"] == 0.7
    assert result["methods"]["ppo"]["policy"] == SUMMARY and result["methods"]["ppo"]["win_rate_ci"] == [0.55, 0.82]
    assert "win rate PPO over SFT (rubric)" in out and "0.700 [0.55, 0.82]" in out


def test_all_methods_run_on_the_same_models_and_data(calls, capsys):
    result = demo.main(["--method", "all", "--rubric", "concise_relevant"])
    assert sorted(result["methods"]) == ["dpo", "ppo", "rloo"]
    rloo = next(c for c in calls if "stages.ppo" in c and any("rloo.yaml" in a for a in c))
    dpo = find(calls, "stages.dpo")
    for cmd in (rloo, dpo):
        assert option(cmd, "--policy") == "sft@v7" and option(cmd, "--reward-model") == "rm@v4"
        assert option(cmd, "--rubric") == "concise_relevant"
    assert option(dpo, "--dataset") == "preferences@v2"  # DPO learns from the same preferences the RM learned from
    out = capsys.readouterr().out
    for row in ("SFT", "PPO", "RLOO", "DPO"):
        assert any(line.strip().startswith(row + " ") for line in out.splitlines())


def test_a_failing_step_stops_the_demo_with_its_exit_code(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("RLHF_HOME", str(tmp_path))
    monkeypatch.setattr(demo, "REPO", tmp_path)
    with pytest.raises(SystemExit) as e:
        demo.step("a step that fails", "-c", "import sys; print('error: unknown model version sft@latest'); sys.exit(2)")
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "demo stopped: step 'a step that fails' failed (exit 2): error: unknown model version sft@latest" in err
