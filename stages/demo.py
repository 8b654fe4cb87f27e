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

from stages.tables import columns, method_table, policy_key

REPO = Path(__file__).resolve().parent.parent
SEED = REPO / "data" / "seed"
CONFIGS = REPO / "data" / "configs"


METHODS = {  # name -> (stage module, config, extra arguments, title)
    "ppo": ("stages.ppo", "ppo.yaml", [], "PPO: optimise the SFT policy against the RM"),
    "rloo": ("stages.ppo", "rloo.yaml", [], "RLOO: 4 samples per prompt, leave-one-out baseline, no critic"),
    "dpo": ("stages.dpo", "dpo.yaml", ["--dataset", "{preferences}"], "DPO: the policy fit to the preference pairs directly"),
}


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


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0, help="seed for every stage")
    ap.add_argument("--sft-epochs", type=float, default=None, help="override the SFT config's epochs")
    ap.add_argument("--rubric", default="concise_helpful",
                    help="the simulated annotators' judge: a shipped rubric or your own path/to/file.py:function")
    ap.add_argument("--noise", type=float, default=0.1, help="fraction of the rubric's pairs the simulated annotators flip")
    ap.add_argument("--k", type=int, default=4, help="candidates per prompt")
    ap.add_argument("--candidate-tokens", type=int, default=48, help="longest candidate answer in tokens")
    ap.add_argument("--method", default="ppo", choices=(*METHODS, "all"),
                    help="how the policy learns from the preferences: ppo (default), rloo, dpo, or all three in one table")
    args = ap.parse_args(argv)
    methods = list(METHODS) if args.method == "all" else [args.method]
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

    # step 5. the policy learns from the preferences (PPO by default), judged on held-out prompts by RM reward,
    # the rubric, KL, length and EOS rate, the same evaluation for every method
    common = ["--policy", sft_ref, "--reward-model", rm["model"], "--prompts", prompts_ref, "--rubric", args.rubric,
              "--seed", str(args.seed)]
    results = {}
    for method in methods:
        module, config, extra, title = METHODS[method]
        extra = [a.replace("{preferences}", pref_ref) for a in extra]
        out = step(title, "-m", module, "--config", str(CONFIGS / config), *common, *extra)
        results[method] = out[next(iter(out))]

    # step 6. the before/after table, the methods side by side, and where to look next
    first = results[methods[0]]
    before, after = first["sft"], first[policy_key(first)]
    rubric_acc = rm.get("accuracy_rubric")
    rows = [("metric", "before", "after"),
            ("SFT held-out eval loss", f"{sft['eval_loss_before']:.4f}", f"{sft['eval_loss_after']:.4f}"),
            ("RM held-out pairwise accuracy", f"{rm['accuracy_before']:.3f}", f"{rm['accuracy']:.3f}"),
            ("RM accuracy vs the rubric", "", f"{rubric_acc:.3f}" if rubric_acc is not None else "n/a"),
            (f"policy: mean RM reward (SFT -> {methods[0].upper()})", f"{before['reward']:+.3f}", f"{after['reward']:+.3f}"),
            (f"policy: mean rubric score ({args.rubric})", f"{before['rubric']:.3f}", f"{after['rubric']:.3f}"),
            ("policy: KL to SFT (nats/answer)", f"{before['kl']:.2f}", f"{after['kl']:.2f}"),
            ("policy: mean length (tokens)", f"{before['length']:.1f}", f"{after['length']:.1f}"),
            (f"win rate {methods[0].upper()} over SFT (rubric)", "", f"{first['win_rate']:.3f}")]
    seconds = round(time.time() - t0, 1)
    print(f"\n=== Results ({seconds:.0f} s)\n{columns(rows)}")
    print(f"\n=== Methods on the same held-out prompts (rubric {args.rubric}; win rate: ties count half)\n"
          f"{method_table(first['sft'], results)}")
    chain = " -> ".join(r["model"] for r in results.values())
    print(f"\nmodels: {sft['model']} -> {rm['model']} -> {chain} (rlhf models list; rlhf models show NAME@vN for a model card)"
          f"\nrun folders (samples, loss plots, checkpoints): {home / 'runs'}"
          f"\nmetrics dashboard (trackio): just dashboard   (data in {home / 'trackio'})")
    result = {"sft": {k: sft[k] for k in ("model", "dataset", "eval_loss_before", "eval_loss_after", "seconds")},
              "rm": {k: rm.get(k) for k in ("model", "dataset", "accuracy", "accuracy_before", "accuracy_rubric", "ece",
                                             "length_corr", "seconds")},
              "rubric": args.rubric, "seconds": seconds,
              "methods": {m: {"model": r["model"], "policy": r[policy_key(r)], "win_rate": r["win_rate"],
                              "win_rate_ci": r.get("win_rate_ci"), "seconds": r["seconds"]} for m, r in results.items()}}
    if "ppo" in results:  # the keys earlier demos printed
        ppo = results["ppo"]
        result["ppo"] = {"model": ppo["model"], "sft": ppo["sft"], "ppo": ppo["ppo"], "win_rate": ppo["win_rate"],
                         "seconds_per_update": ppo["seconds_per_update"], "seconds": ppo["seconds"]}
    print("RESULT " + json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
