"""Workspaces the RM benchmarks share: the demo's SFT model and candidate sets, made once and cached, and copies of
the store for each experiment (so one experiment's rankings never reach another's snapshots). Steps run as the
user's commands do (`python -m rlhf.cli ...`, `python -m stages.X`), each with its RESULT line read back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run(cmd: list[str], home: Path, log: Path) -> dict:
    """Run `python CMD` with RLHF_HOME=home, output to `log`; the JSON of its RESULT line (or {}); raise on failure."""
    env = {**os.environ, "RLHF_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    with open(log, "a") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n")
        fh.flush()
        proc = subprocess.run([sys.executable, *cmd], cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        raise SystemExit(f"bench: `{' '.join(cmd[:4])} ...` failed (exit {proc.returncode}); see {log}:\n  " + "\n  ".join(tail))
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    return {}


def stdout_of(cmd: list[str], home: Path) -> str:
    env = {**os.environ, "RLHF_HOME": str(home)}
    out = subprocess.run([sys.executable, *cmd], cwd=REPO, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} failed: {out.stderr.strip()}")
    return out.stdout.strip()


def work_folder(given: str | None) -> tuple[Path, Path]:
    """(the cache folder: --work, else RLHF_HOME/bench-rm-generalization, created; its log file), said once."""
    work = Path(given or Path(os.environ.get("RLHF_HOME", "workspace")) / "bench-rm-generalization").resolve()
    work.mkdir(parents=True, exist_ok=True)
    log = work / "log.txt"
    print(f"bench: work folder {work} (log: {log})", flush=True)
    return work, log


def clone_workspace(src: Path, dst: Path) -> Path:
    """A copy of a workspace's store; registry and model folders are shared read-only (rows hold absolute paths)."""
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for f in src.glob("rlhf.db*"):
        shutil.copy2(f, dst / f.name)
    (dst / "models").mkdir()
    for m in (src / "models").iterdir():
        (dst / "models" / m.name).symlink_to(m.resolve())
    return dst


def base_workspace(work: Path, seed: int, log: Path) -> tuple[Path, str, str]:
    """RLHF_HOME with the seed data, its snapshots and the demo's SFT model (made once)."""
    home = work / "base"
    done = home / "sft.json"
    if done.exists():
        info = json.loads(done.read_text())
        return home, info["prompts"], info["sft"]
    home.mkdir(parents=True, exist_ok=True)
    seed_dir = REPO / "data" / "seed"
    run(["-m", "rlhf.cli", "import", "prompts", str(seed_dir / "prompts.jsonl")], home, log)
    run(["-m", "rlhf.cli", "import", "demonstrations", str(seed_dir / "demonstrations.jsonl"), "--approved-by", "seed-data"],
        home, log)
    prompts = stdout_of(["-m", "rlhf.cli", "registry", "snapshot", "prompts"], home)
    sft_data = stdout_of(["-m", "rlhf.cli", "registry", "snapshot", "sft"], home)
    sft = run(["-m", "stages.sft", "--config", "data/configs/sft.yaml", "--dataset", sft_data, "--seed", str(seed),
               "--report-to", "none"], home, log)["sft"]["model"]
    done.write_text(json.dumps({"prompts": prompts, "sft": sft}))
    return home, prompts, sft


def candidate_workspace(work: Path, base: Path, prompts: str, sft: str, k: int, tokens: int, seed: int, log: Path) -> Path:
    """A copy of the base store with K candidates per prompt from the SFT model (made once per setting)."""
    home = work / f"cand-k{k}-t{tokens}"
    if (home / "done").exists():
        return home
    clone_workspace(base, home)
    t0 = time.time()
    run(["-m", "rlhf.cli", "generate", "--model", sft, "--prompts", prompts, "--k", str(k), "--split", "all",
         "--max-new-tokens", str(tokens), "--seed", str(seed)], home, log)
    (home / "done").write_text(json.dumps({"seconds": round(time.time() - t0, 1)}))
    return home


def rm_metrics(home: Path, ref: str) -> dict:
    os.environ["RLHF_HOME"] = str(home)
    from rlhf.data import registry
    from rlhf.data.store import session_scope

    with session_scope() as s:
        return dict(registry.get_model_version(s, ref).metrics)
