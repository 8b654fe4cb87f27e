"""`just demo`: the whole loop on the built-in model and the shipped seed data, in one command.

Each step runs as its own process (the same commands a user types), its output shown as it
runs; the numbers come from each stage's `RESULT {json}` line. Ends with a before/after table
and one `RESULT {json}` line of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SEED = REPO / "data" / "seed"
CONFIGS = REPO / "data" / "configs"


def step(title: str, *cmd: str) -> dict:
    """Run one command, echo its output, return the JSON of its `RESULT` line (if any); stop the demo on failure."""
    print(f"\n=== {title}\n$ {' '.join(cmd)}", flush=True)
    proc = subprocess.Popen([sys.executable, *cmd], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    result, last_lines = {}, []
    for line in proc.stdout:
        sys.stdout.write(line)
        last_lines = (last_lines + [line.rstrip()])[-5:]
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
    if proc.wait() != 0:
        print(f"\ndemo stopped: step '{title}' failed (exit {proc.returncode}): {last_lines[-1] if last_lines else ''}", file=sys.stderr)
        sys.exit(proc.returncode or 1)
    return result


def stdout_of(*cmd: str) -> str:
    out = subprocess.run([sys.executable, *cmd], cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:
        print(out.stderr.strip(), file=sys.stderr)
        sys.exit(out.returncode)
    return out.stdout.strip()


def table(rows: list[tuple[str, str, str]]) -> str:
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"  {a:<{w[0]}}  {b:>{w[1]}}  {c:>{w[2]}}" for a, b, c in rows)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0, help="seed for every stage")
    ap.add_argument("--sft-epochs", type=float, default=None, help="override the SFT config's epochs")
    args = ap.parse_args(argv)
    t0 = time.time()
    cli = ("-m", "rlhf.cli")
    home = Path(os.environ.get("RLHF_HOME", "workspace")).resolve()
    print(f"RLHF demo: workspace {home} (set RLHF_HOME to use another)")

    # step 1. import the shipped seed data (duplicates are skipped on a re-run) and freeze it
    step("import seed prompts", *cli, "import", "prompts", str(SEED / "prompts.jsonl"))
    step("import seed demonstrations (written and checked by the team: approved)", *cli, "import", "demonstrations",
         str(SEED / "demonstrations.jsonl"), "--approved-by", "seed-data")
    prompts_ref = stdout_of(*cli, "registry", "snapshot", "prompts")
    sft_data_ref = stdout_of(*cli, "registry", "snapshot", "sft")
    print(f"snapshots: {prompts_ref}, {sft_data_ref}")

    # step 2. SFT on the built-in model
    sft_args = ["-m", "stages.sft", "--config", str(CONFIGS / "sft.yaml"), "--dataset", sft_data_ref, "--seed", str(args.seed)]
    if args.sft_epochs is not None:
        sft_args += ["--epochs", str(args.sft_epochs)]
    sft = step("SFT: fine-tune the built-in model on approved demonstrations", *sft_args)["sft"]

    # step 3. the before/after table and where to look next
    rows = [("metric", "before", "after"),
            ("SFT held-out eval loss", f"{sft['eval_loss_before']:.4f}", f"{sft['eval_loss_after']:.4f}")]
    seconds = round(time.time() - t0, 1)
    print(f"\n=== Results ({seconds:.0f} s)\n{table(rows)}")
    print(f"\nmodels: {sft['model']} (rlhf models list)\nrun folders, samples, loss plots: {home / 'runs'}"
          f"\nmetrics dashboard (trackio): just dashboard   (data in {home / 'trackio'})")
    result = {"sft": {k: sft[k] for k in ("model", "dataset", "eval_loss_before", "eval_loss_after", "seconds")},
              "seconds": seconds}
    print("RESULT " + json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
