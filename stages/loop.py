"""`just loop --rounds N`: iterated rounds of the closed loop (issue 16, part 4), the same commands a user types.

Each round, from the latest policy and reward model:

    candidates from the policy (`rlhf generate`)  ->  rankings (simulated with `--rubric`, or people in the app)
    ->  preferences snapshot (every round's rankings so far)  ->  RM warm-started from the last RM (`stages.rm --model
    rm@vN`: the last reward model is a sequence classifier already, trained further on the new snapshot)
    ->  PPO from the last policy against the new RM (`stages.ppo --policy <last policy>`)

Round 1 starts from SFT (trained here on the seed data unless `--policy` names one) and an RM trained from it. Every
model is registered with its lineage (base = the previous round's model, datasets = the snapshot it saw). After
each round, one table: RM accuracy (held-out pairs, and against the rubric), the policy's RM reward and rubric
score on the held-out prompts, KL to the previous round's policy (the PPO stage's) and to the first policy (`rlhf
round kl`), the win rate over the previous round's policy (the PPO stage judges both on the same held-out prompts)
and over round 1's (from the answers each PPO stage stored). Ends with a table over the rounds and one RESULT line.

Without `--rubric` the rankings come from people: a round stops after its candidates are in the app's rank queue and
prints the command that continues it (`--start-at preferences`) once they are ranked and approved.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from stages.demo import CONFIGS, SEED, step, stdout_of
from stages.tables import round_row, rounds_table, versus_first

START_AT = ("candidates", "preferences")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="rounds to run")
    ap.add_argument("--rubric", default="", help="simulated annotators judge with this rubric (a shipped one or "
                                                 "path/to/file.py:function); empty = people rank in the app")
    ap.add_argument("--noise", type=float, default=0.1, help="fraction of the rubric's pairs the simulated annotators flip")
    ap.add_argument("--policy", default="", help="policy to start from (NAME@vN); default: SFT on the seed data, here")
    ap.add_argument("--reward-model", default="", help="RM to warm-start round 1's RM from (default: the SFT model)")
    ap.add_argument("--prompts", default="", help="prompts snapshot NAME@vN (default: the seed prompts, imported here)")
    ap.add_argument("--start-at", default="candidates", choices=START_AT,
                    help="preferences = round 1's candidates are already ranked (people): continue from the snapshot")
    ap.add_argument("--k", type=int, default=4, help="candidates per prompt")
    ap.add_argument("--candidate-tokens", type=int, default=48, help="longest candidate answer in tokens")
    ap.add_argument("--rm-epochs", type=float, default=1.0, help="RM passes over the (growing) preferences per round")
    ap.add_argument("--ppo-updates", type=int, default=12, help="PPO updates per round (x batch 8 episodes)")
    ap.add_argument("--kl-prompts", type=int, default=40, help="held-out prompts for the KL to the first policy (0 = skip)")
    ap.add_argument("--seed", type=int, default=0, help="seed of round 1; round r uses seed + r - 1")
    ap.add_argument("--extra-rm", default="", help="more RM stage options, space-separated (e.g. '--trainer listwise')")
    ap.add_argument("--extra-ppo", default="", help="more PPO stage options, space-separated")
    args = ap.parse_args(argv)
    for name in ("policy", "reward_model", "prompts"):
        if getattr(args, name).endswith("@latest"):  # candidates and rankings are matched by the exact version
            ap.error(f"--{name.replace('_', '-')} {getattr(args, name)}: name a pinned version NAME@vN (rlhf models list)")
    t0 = time.time()
    cli = ("-m", "rlhf.cli")
    home = Path(os.environ.get("RLHF_HOME", "workspace")).resolve()
    print(f"RLHF loop: {args.rounds} rounds, workspace {home}; annotators: "
          + (f"simulated ({args.rubric}, noise {args.noise})" if args.rubric else "people in the app"))

    # step 1. the prompts and the round-0 policy (SFT on the seed data unless given)
    prompts = args.prompts
    if not prompts:
        step("import seed prompts", *cli, "import", "prompts", str(SEED / "prompts.jsonl"))
        prompts = stdout_of(*cli, "registry", "snapshot", "prompts")
    policy = args.policy
    if not policy:
        step("import seed demonstrations", *cli, "import", "demonstrations", str(SEED / "demonstrations.jsonl"),
             "--approved-by", "seed-data")
        sft_data = stdout_of(*cli, "registry", "snapshot", "sft")
        policy = step("SFT: the round-0 policy", "-m", "stages.sft", "--config", str(CONFIGS / "sft.yaml"), "--dataset",
                      sft_data, "--seed", str(args.seed))["sft"]["model"]
    first_policy, rm_from = policy, args.reward_model or policy
    judge = ["--rubric", args.rubric] if args.rubric else []

    rows: list[dict] = []
    samples: list[str | None] = []  # each round's held-out answers and rubric scores (the PPO stage's file)
    for n in range(1, args.rounds + 1):
        seed = str(args.seed + n - 1)
        # step 2. candidates from the latest policy, ranked (simulated annotators, or people in the app)
        if n > 1 or args.start_at == "candidates":
            step(f"round {n}: candidates from {policy}", *cli, "generate", "--model", policy, "--prompts", prompts,
                 "--k", str(args.k), "--split", "train", "--max-new-tokens", str(args.candidate_tokens), "--seed", seed)
            if not args.rubric:
                again = (f"just loop --rounds {args.rounds - n + 1} --policy {policy} --reward-model {rm_from} "
                         f"--prompts {prompts} --start-at preferences")
                print(f"\nround {n}: {policy}'s candidates are in the app's rank queue. Once people have ranked them and "
                      f"an expert approved the rankings, continue with:\n  {again}")
                result = {"waiting": {"round": n, "policy": policy, "reward_model": rm_from, "continue": again},
                          "rounds": rows}
                print("RESULT " + json.dumps(result), flush=True)
                return result
            # the same simulated annotator every round: `simulate rank` ranks a prompt again when its candidates are new
            step(f"round {n}: simulated annotators rank {policy}'s candidates", *cli, "simulate", "rank", "--rubric",
                 args.rubric, "--noise", str(args.noise), "--model-version", policy, "--seed", seed, "--approve")

        # step 3. a preferences snapshot of every round's rankings so far
        prefs = stdout_of(*cli, "registry", "snapshot", "preferences", *(["--include-simulated"] if args.rubric else []))

        # step 4. the RM, warm-started from the last one (round 1: from the policy, as `just rm` does)
        rm = step(f"round {n}: RM from {rm_from} on {prefs}", "-m", "stages.rm", "--config", str(CONFIGS / "rm.yaml"),
                  "--model", rm_from, "--dataset", prefs, "--epochs", str(args.rm_epochs), "--seed", seed,
                  *judge, *args.extra_rm.split())["rm"]

        # step 5. PPO from the last policy against the new RM, judged against that policy on the held-out prompts
        ppo = step(f"round {n}: PPO from {policy} against {rm['model']}", "-m", "stages.ppo", "--config",
                   str(CONFIGS / "ppo.yaml"), "--policy", policy, "--reward-model", rm["model"], "--prompts", prompts,
                   "--updates", str(args.ppo_updates), "--seed", seed, *judge, *args.extra_ppo.split())["ppo"]
        kl = {}
        if args.kl_prompts:  # PPO measured the KL to the previous round's policy; this is the drift since round 0
            kl = step(f"round {n}: KL of {ppo['model']} to {first_policy}", *cli, "round", "kl", "--policy", ppo["model"],
                      "--reference", first_policy, "--prompts", prompts, "--limit", str(args.kl_prompts), "--seed",
                      seed)["kl"]
        rows.append(round_row(n, rm, ppo, kl))
        samples.append(ppo.get("samples"))
        versus_first(rows, samples)
        print(f"\n=== round {n} ({time.time() - t0:.0f} s so far)\n{rounds_table(rows[-1:])}", flush=True)
        policy, rm_from = ppo["model"], rm["model"]

    # step 6. the rounds side by side
    seconds = round(time.time() - t0, 1)
    print(f"\n=== {len(rows)} rounds from {first_policy} ({seconds:.0f} s; rubric {args.rubric or 'of the policy stage'}; "
          f"win rate: the round's policy over the previous one on the held-out prompts, ties half)\n{rounds_table(rows)}")
    if len(rows) > 1:
        last = rows[-1]
        print(f"rubric score round 1 -> round {len(rows)}: {rows[0]['rubric']:.3f} -> {last['rubric']:.3f}"
              + (f"; round {len(rows)} over round 1 on the same prompts: win rate {last['win_rate_vs_first']:.3f}"
                 if last.get("win_rate_vs_first") is not None else ""))
    result = {"first_policy": first_policy, "prompts": prompts, "rubric": args.rubric, "rounds": rows, "seconds": seconds}
    print("RESULT " + json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
