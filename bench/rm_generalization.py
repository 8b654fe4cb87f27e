"""Does the reward model learn a style guide it was never tuned for, and does PPO then improve the policy by it?

    python bench/rm_generalization.py                       # the suite, the default RM settings, no PPO
    python bench/rm_generalization.py --levers base,k8      # compare RM settings (levers) side by side
    python bench/rm_generalization.py --ppo                 # also PPO per guide with the first lever's RM
    python bench/rm_generalization.py --guides holdout      # the two held-out guides (never used to choose settings)

For each style guide (bench/style_guides/, plain `score(prompt, response)` files the service has never seen):
the demo's SFT model -> K candidates per prompt -> simulated annotators rank them with the guide (+ noise) ->
a `preferences` snapshot -> the RM stage with each lever's settings -> held-out evaluation: accuracy against the
guide itself, the RM's reward/length correlation beside the guide's own, ECE, seconds. With --ppo, the PPO stage
against that RM, judged by the guide on the 40 held-out prompts: RM reward and guide score before/after, win rate
(95% Wilson interval), KL, EOS rate, length.

Work is cached under --work (default RLHF_HOME/bench-rm-generalization): the SFT model and each candidate set are
made once and reused; every guide x lever runs in its own copy of the store so guides never see each other's
rankings. Ends with a table and one `RESULT {json}` line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
from _workspaces import (base_workspace, candidate_workspace, clone_workspace, rm_metrics, run,  # noqa: E402
                         stdout_of, work_folder)
GUIDES = REPO / "bench" / "style_guides"
SUITE = [f"{GUIDES / n}.py:score" for n in ("structure", "register", "specific", "length_band")]
HOLDOUT = [f"{GUIDES / 'holdout' / n}.py:score" for n in ("teacher", "brisk")]

# RM settings to compare: each is a list of `--key value` overrides of data/configs/rm.yaml, plus candidate
# settings (k, candidate_tokens) that decide which candidate set the rankings are made from.
LEVERS: dict[str, dict] = {
    "trl": {"k": 4, "tokens": 48, "rm": ["--trainer", "trl"]},  # the RM of the previous demo: trl, one pair per row
    "listwise": {"k": 4, "tokens": 48, "rm": ["--trainer", "listwise", "--epochs", "2"]},
    "listwise_k8": {"k": 8, "tokens": 48, "rm": ["--trainer", "listwise", "--epochs", "2"]},
    "top2_e4": {"k": 4, "tokens": 48, "rm": ["--trainer", "listwise", "--lora-layers", "2", "--epochs", "4"]},
    "deep12_top4": {"k": 4, "tokens": 48, "rm": ["--trainer", "listwise", "--keep-layers", "12", "--lora-layers", "4",
                                                  "--epochs", "3"]},
    "longer_k6_t64": {"k": 6, "tokens": 64, "rm": ["--trainer", "listwise", "--epochs", "2", "--max-length", "224"]},
}

def guide_name(spec: str) -> str:
    return Path(spec.rpartition(":")[0]).stem


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--guides", default="suite", help="suite | holdout | all | comma-separated path.py:function specs")
    ap.add_argument("--levers", default="listwise", help=f"comma-separated RM settings to compare: {', '.join(LEVERS)}")
    ap.add_argument("--ppo", action="store_true", help="also run PPO per guide against the first lever's RM")
    ap.add_argument("--noise", type=float, default=0.1, help="fraction of the guide's pairs the simulated annotators flip")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default=None, help="cache folder (default RLHF_HOME/bench-rm-generalization)")
    args = ap.parse_args(argv)
    guides = {"suite": SUITE, "holdout": HOLDOUT, "all": SUITE + HOLDOUT}.get(args.guides) or args.guides.split(",")
    levers = args.levers.split(",")
    unknown = [lv for lv in levers if lv not in LEVERS]
    if unknown:
        raise SystemExit(f"bench: unknown lever(s) {unknown}; known: {', '.join(LEVERS)}")
    work, log = work_folder(args.work)

    t0 = time.time()
    base, prompts, sft = base_workspace(work, args.seed, log)
    rows, ppo_rows = [], []
    for spec in guides:
        name = guide_name(spec)
        for lever in levers:
            setting = LEVERS[lever]
            cands = candidate_workspace(work, base, prompts, sft, setting["k"], setting["tokens"], args.seed, log)
            home = clone_workspace(cands, work / "runs" / f"{name}-{lever}")
            sim = run(["-m", "rlhf.cli", "simulate", "rank", "--rubric", spec, "--noise", str(args.noise), "--model-version",
                       sft, "--seed", str(args.seed), "--approve"], home, log)["simulate"]
            prefs = stdout_of(["-m", "rlhf.cli", "registry", "snapshot", "preferences", "--include-simulated"], home)
            t_rm = time.time()
            rm = run(["-m", "stages.rm", "--config", "data/configs/rm.yaml", "--model", sft, "--dataset", prefs, "--rubric",
                      spec, "--seed", str(args.seed), "--report-to", "none", *setting["rm"]], home, log)["rm"]
            m = rm_metrics(home, rm["model"])
            row = {"guide": name, "lever": lever, "pairs": sim["pairs"], "accuracy_rubric": m.get("accuracy/rubric"),
                   "length_corr": m.get("reward/length_corr"), "rubric_length_corr": m.get("rubric/length_corr"),
                   "ece": m.get("calibration/ece"), "seconds": round(time.time() - t_rm, 1), "rm": rm["model"]}
            rows.append(row)
            print(f"{name:<12} {lever:<12} acc vs guide {row['accuracy_rubric']:.3f}  len corr {row['length_corr']:+.2f} "
                  f"(guide {row['rubric_length_corr']:+.2f})  ECE {row['ece']:.3f}  {row['seconds']:.0f} s", flush=True)
            if args.ppo and lever == levers[0]:
                start = log.stat().st_size if log.exists() else 0  # this run's part of the shared log
                try:
                    ppo = run(["-m", "stages.ppo", "--config", "data/configs/ppo.yaml", "--policy", sft, "--reward-model",
                               rm["model"], "--prompts", prompts, "--rubric", spec, "--seed", str(args.seed),
                               "--report-to", "none"], home, log)["ppo"]
                except SystemExit:  # a guard (the KL stop) ended the run: a result of this guide, not of the bench
                    with open(log, "rb") as fh:
                        fh.seek(start)
                        mine = fh.read().decode(errors="replace").splitlines()
                    stops = [ln for ln in mine if ln.startswith("error: PPO stopped")]
                    if not stops:
                        raise
                    ppo_rows.append({"guide": name, "stopped": stops[-1][len("error: "):].split("; ")[0]})
                    print(f"{name:<12} PPO {ppo_rows[-1]['stopped']}", flush=True)
                    continue
                ppo_rows.append({"guide": name, **{k: ppo.get(k) for k in ("sft", "ppo", "win_rate", "win_rate_ci", "seconds")}})

    print(f"\n=== RM accuracy against each style guide ({time.time() - t0:.0f} s)")
    print(f"  {'guide':<12} {'lever':<12} {'pairs':>6} {'acc vs guide':>12} {'RM len corr':>11} {'guide len corr':>14} "
          f"{'ECE':>6} {'seconds':>8}")
    for r in rows:
        ok = r["accuracy_rubric"] >= 0.85 and abs(r["length_corr"]) <= abs(r["rubric_length_corr"]) + 1e-9
        print(f"  {r['guide']:<12} {r['lever']:<12} {r['pairs']:>6} {r['accuracy_rubric']:>12.3f} {r['length_corr']:>+11.2f} "
              f"{r['rubric_length_corr']:>+14.2f} {r['ece']:>6.3f} {r['seconds']:>8.0f}  {'ok' if ok else 'below target'}")
    if ppo_rows:
        print("\n=== PPO against each guide's RM, judged by the guide on the held-out prompts")
        print(f"  {'guide':<12} {'RM reward':>17} {'guide score':>15} {'win rate [95%]':>22} {'KL':>6} {'EOS':>11} {'length':>13}")
        for p in ppo_rows:
            if "stopped" in p:
                print(f"  {p['guide']:<12} {p['stopped']}")
                continue
            b, a = p["sft"], p["ppo"]
            ci = p.get("win_rate_ci") or [float("nan")] * 2
            print(f"  {p['guide']:<12} {b['reward']:+.3f} -> {a['reward']:+.3f} {b['rubric']:.2f} -> {a['rubric']:.2f} "
                  f"{p['win_rate']:>8.3f} [{ci[0]:.2f}, {ci[1]:.2f}] {a['kl']:>6.2f} "
                  f"{b.get('eos', float('nan')):.2f} -> {a.get('eos', float('nan')):.2f} "
                  f"{b['length']:.1f} -> {a['length']:.1f}")
    result = {"bench": "rm_generalization", "rows": rows, "ppo": ppo_rows, "seconds": round(time.time() - t0, 1)}
    print("RESULT " + json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
