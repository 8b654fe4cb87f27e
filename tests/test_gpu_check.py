"""The one-shot GPU check's dry run on a CPU: every command it would run parses its options, every config it
would launch with loads, and the JSON it writes names every step."""

from __future__ import annotations

import json
import subprocess

from tests.conftest import REPO

STEPS = ["tests", "bench_sft", "bench_rm", "bench_ppo", "qlora_7b", "fsdp2", "zero3"]


def test_dry_run_checks_every_command_and_config(tmp_path):
    proc = subprocess.run(["bash", "bench/gpu_check.sh", "--dry-run"], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env={"PATH": "/usr/bin:/bin", "OUT": str(tmp_path), "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    last = json.loads(proc.stdout.strip().splitlines()[-1][len("RESULT "):])
    assert last["gpu_check"] == {name: "ok" for name in STEPS}
    out = json.loads((tmp_path / "gpu_check_dry_run.json").read_text())
    steps = out["steps"]
    assert out["dry_run"] and list(steps) == STEPS
    assert steps["tests"]["result"]["tests collected"] >= 4  # the QLoRA load + one step of each stage
    assert steps["bench_sft"]["result"]["size"] == "1.7b" and steps["bench_sft"]["result"]["device"] == "cuda"
    assert steps["bench_rm"]["result"]["size"] == steps["bench_ppo"]["result"]["size"] == "360m"
    assert 6.5e9 < steps["qlora_7b"]["result"]["params"] < 7e9
    assert steps["fsdp2"]["result"]["config"]["fsdp"]["version"] == 2
    assert steps["zero3"]["result"]["config"]["deepspeed"]["zero_optimization"]["stage"] == 3


def test_bad_option_fails_the_dry_run():
    proc = subprocess.run(["bash", "bench/gpu_check.sh", "--bogus"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "usage: bash bench/gpu_check.sh" in proc.stderr
