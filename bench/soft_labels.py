"""Annotators of mixed reliability: do soft or reliability-weighted labels beat majority-vote hard labels?

    python bench/soft_labels.py                                   # suite guide `structure`, noise 0.05 / 0.2 / 0.45
    python bench/soft_labels.py --guide bench/style_guides/specific.py:score --noise 0.05,0.3,0.45

Three simulated annotators rank every prompt's candidates (overlap 3), each with its own noise level (the
expected share of the guide's pairs it flips), so every pair carries three votes of unequal worth. The same
listwise reward model is trained three times on the same snapshot, with `--labels hard` (the majority side),
`soft` (the vote fraction) and `weighted` (votes weighted by each annotator's estimated reliability: agreement with
the others), and judged on the held-out prompts by its accuracy against the guide itself. Prints a table (with the
reliability the RM stage estimated for each annotator) and a RESULT line. The SFT model and candidates are cached
with bench/rm_generalization.py's (same --work folder).
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

LABELS = ("hard", "soft", "weighted")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--guide", default=str(REPO / "bench" / "style_guides" / "structure.py") + ":score")
    ap.add_argument("--noise", default="0.05,0.2,0.45", help="one level per annotator")
    ap.add_argument("--k", type=int, default=4, help="candidates per prompt")
    ap.add_argument("--tokens", type=int, default=48, help="longest candidate in tokens")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rm", nargs=argparse.REMAINDER, default=[], help="extra RM stage options (after everything else)")
    ap.add_argument("--work", default=None, help="cache folder (default RLHF_HOME/bench-rm-generalization)")
    args = ap.parse_args(argv)
    work, log = work_folder(args.work)
    t0 = time.time()
    base, prompts, sft = base_workspace(work, args.seed, log)
    cands = candidate_workspace(work, base, prompts, sft, args.k, args.tokens, args.seed, log)
    n = len(args.noise.split(","))
    home = clone_workspace(cands, work / "runs" / f"soft-{Path(args.guide.rpartition(':')[0]).stem}-{args.noise}")
    sim = run(["-m", "rlhf.cli", "simulate", "rank", "--rubric", args.guide, "--noise", args.noise, "--annotators", str(n),
               "--overlap", str(n), "--model-version", sft, "--seed", str(args.seed), "--approve"], home, log)["simulate"]
    prefs = stdout_of(["-m", "rlhf.cli", "registry", "snapshot", "preferences", "--include-simulated"], home)
    rows = []
    for labels in LABELS:
        t_rm = time.time()
        rm = run(["-m", "stages.rm", "--config", "data/configs/rm.yaml", "--model", sft, "--dataset", prefs, "--rubric",
                  args.guide, "--seed", str(args.seed), "--report-to", "none", "--trainer", "listwise", "--labels", labels,
                  "--name", f"rm-{labels}", *args.rm], home, log)["rm"]
        m = rm_metrics(home, rm["model"])
        rows.append({"labels": labels, "accuracy_rubric": m.get("accuracy/rubric"), "ece": m.get("calibration/ece"),
                     "length_corr": m.get("reward/length_corr"), "reliability": m.get("annotator_reliability", {}),
                     "seconds": round(time.time() - t_rm, 1), "model": rm["model"]})
        print(f"{labels:<9} accuracy vs guide {rows[-1]['accuracy_rubric']:.3f}  ECE {rows[-1]['ece']:.3f}", flush=True)

    print(f"\n=== {n} annotators with noise {args.noise} on every prompt ({sim['rankings_added']} rankings, measured flip "
          f"rate {sim['measured_flip_rate']:.3f}); guide {Path(args.guide.rpartition(':')[0]).name} ({time.time() - t0:.0f} s)")
    print(f"  {'labels':<9} {'acc vs guide':>12} {'ECE':>6} {'len corr':>9} {'seconds':>8}")
    for r in rows:
        print(f"  {r['labels']:<9} {r['accuracy_rubric']:>12.3f} {r['ece']:>6.3f} {r['length_corr']:>+9.2f} {r['seconds']:>8.0f}")
    print("  estimated reliability (agreement with the others): "
          + ", ".join(f"{k.rpartition(':')[2]}={v:.2f}" for k, v in rows[-1]["reliability"].items()))
    result = {"bench": "soft_labels", "guide": args.guide, "noise": args.noise, "rows": rows,
              "seconds": round(time.time() - t0, 1)}
    print("RESULT " + json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
