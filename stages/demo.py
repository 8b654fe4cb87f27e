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
    ap.add_argument("--rubric", default="concise_helpful",
                    help="the simulated annotators' judge: a shipped rubric or your own path/to/file.py:function")
    ap.add_argument("--noise", type=float, default=0.1, help="fraction of the rubric's pairs the simulated annotators flip")
    ap.add_argument("--k", type=int, default=4, help="candidates per prompt")
    ap.add_argument("--candidate-tokens", type=int, default=48, help="longest candidate answer in tokens")
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

    # step 3. candidates from the SFT model, ranked by simulated annotators (a rubric + 10% flipped pairs)
    sft_ref = sft["model"]
    step("candidates: K answers per prompt from the SFT model", *cli, "generate", "--model", sft_ref, "--prompts", prompts_ref,
         "--k", str(args.k), "--split", "all", "--max-new-tokens", str(args.candidate_tokens), "--seed", str(args.seed))
    step(f"simulated annotators rank the candidates (rubric {args.rubric}, noise {args.noise})", *cli, "simulate", "rank",
         "--rubric", args.rubric, "--noise", str(args.noise), "--model-version", sft_ref, "--seed", str(args.seed), "--approve")
    pref_ref = stdout_of(*cli, "registry", "snapshot", "preferences", "--include-simulated")
    print(f"snapshot: {pref_ref}")

    # step 4. reward model from the SFT model on those preferences
    rm = step("RM: learn the annotators' preferences", "-m", "stages.rm", "--config", str(CONFIGS / "rm.yaml"),
              "--model", sft_ref, "--dataset", pref_ref, "--seed", str(args.seed))["rm"]

    # step 5. PPO against the RM, judged on held-out prompts by RM reward, the rubric, KL and length
    ppo = step("PPO: optimise the SFT policy against the RM", "-m", "stages.ppo", "--config", str(CONFIGS / "ppo.yaml"),
               "--policy", sft_ref, "--reward-model", rm["model"], "--prompts", prompts_ref, "--rubric", args.rubric,
               "--seed", str(args.seed))["ppo"]

    # step 6. the before/after table and where to look next
    before, after = ppo["sft"], ppo["ppo"]
    rubric_acc = rm.get("accuracy_rubric")
    rows = [("metric", "before", "after"),
            ("SFT held-out eval loss", f"{sft['eval_loss_before']:.4f}", f"{sft['eval_loss_after']:.4f}"),
            ("RM held-out pairwise accuracy", f"{rm['accuracy_before']:.3f}", f"{rm['accuracy']:.3f}"),
            ("RM accuracy vs the rubric", "", f"{rubric_acc:.3f}" if rubric_acc is not None else "n/a"),
            ("policy: mean RM reward (SFT -> PPO)", f"{before['reward']:+.3f}", f"{after['reward']:+.3f}"),
            (f"policy: mean rubric score ({args.rubric})", f"{before['rubric']:.3f}", f"{after['rubric']:.3f}"),
            ("policy: KL to SFT (nats/answer)", f"{before['kl']:.2f}", f"{after['kl']:.2f}"),
            ("policy: mean length (tokens)", f"{before['length']:.1f}", f"{after['length']:.1f}"),
            ("win rate PPO over SFT (rubric)", "", f"{ppo['win_rate']:.3f}")]
    seconds = round(time.time() - t0, 1)
    print(f"\n=== Results ({seconds:.0f} s)\n{table(rows)}")
    print(f"\nmodels: {sft['model']} -> {rm['model']} -> {ppo['model']} (rlhf models list)"
          f"\nrun folders (samples, loss plots, checkpoints): {home / 'runs'}"
          f"\nmetrics dashboard (trackio): just dashboard   (data in {home / 'trackio'})")
    result = {"sft": {k: sft[k] for k in ("model", "dataset", "eval_loss_before", "eval_loss_after", "seconds")},
              "rm": {k: rm.get(k) for k in ("model", "dataset", "accuracy", "accuracy_before", "accuracy_rubric", "ece",
                                             "length_corr", "seconds")},
              "ppo": {"model": ppo["model"], "sft": before, "ppo": after, "win_rate": ppo["win_rate"],
                      "seconds_per_update": ppo["seconds_per_update"], "seconds": ppo["seconds"]},
              "rubric": args.rubric, "seconds": seconds}
    print("RESULT " + json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
