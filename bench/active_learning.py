"""Does labeling what the reward model is unsure about pay? RM accuracy vs rankings collected, random vs uncertainty.

    python bench/active_learning.py                          # style guide `structure`, 3 seeds, 20 -> 100 rankings
    python bench/active_learning.py --guide bench/style_guides/specific.py:score --seeds 0,1,2,3,4
    python bench/active_learning.py --smoke                  # tiny settings: checks the pipeline in about a minute

A simulated annotator (the style guide plus 10% flipped pairs, `rlhf.train.simulate.noisy_order`) ranks the K
candidates of the prompts it is handed. Both strategies start from the same random `--start` ranked prompts and add
`--step` prompts per round from the unlabeled training prompts until `--budget`:

- random: the next prompts in a seeded shuffle;
- uncertainty: the prompts whose candidates the current RM separates least (`rlhf.train.uncertainty.item_priority`,
  the rule the app's uncertainty queue uses).

After every round the reward model is trained afresh on all rankings so far (the RM stage's listwise trainer on a
frozen trunk, `rlhf.train.rm._fit_listwise`'s recipe: the SFT model's bottom `--keep-layers` blocks with LoRA on
the top `--lora-layers`) and judged on the held-out prompts by its accuracy against the guide itself (the
`accuracy/rubric` of `rlhf.train.reward.evaluate`: pairs the guide scores equal are left out). The frozen trunk of
every candidate is computed once per process and shared by all rounds, seeds and strategies.

Target: uncertainty reaches random's final accuracy (mean over seeds) with at most 60% of random's rankings.
Writes a plot (PNG) and a table; ends with one `RESULT {json}` line. The SFT model and its candidates are cached
under --work with bench/rm_generalization.py's (bench/_workspaces.py).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
from _workspaces import base_workspace, candidate_workspace, work_folder  # noqa: E402

STRATEGIES = ("random", "uncertainty")
TARGET_SHARE = 0.6  # uncertainty must reach random's final accuracy with at most this share of its rankings


def load_candidates(home: Path, sft: str) -> tuple[list[dict], list[dict]]:
    """(train prompts, held-out prompts), each {"prompt": messages, "texts": the SFT model's distinct candidates}."""
    os.environ["RLHF_HOME"] = str(home)
    from sqlalchemy import select

    from rlhf.data.store import session_scope
    from rlhf.data.store.models import Prompt, Response

    with session_scope() as s:
        prompts = {p.id: p for p in s.scalars(select(Prompt).order_by(Prompt.id))}
        texts: dict[int, list[str]] = {}
        for r in s.scalars(select(Response).where(Response.model_version == sft).order_by(Response.id)):
            if r.text not in texts.setdefault(r.prompt_id, []):
                texts[r.prompt_id].append(r.text)
        rows = [(prompts[pid].split, {"prompt": list(prompts[pid].messages), "texts": t})
                for pid, t in sorted(texts.items()) if len(t) >= 2]
    return [r for split, r in rows if split != "heldout"], [r for split, r in rows if split == "heldout"]


class Bench:
    """The SFT model's bottom blocks as a reward model, its frozen trunk cached for every candidate once."""

    def __init__(self, sft: str, keep_layers: int, lora_layers: int, max_length: int):
        from rlhf.train import listwise, modeling, rm
        from rlhf.train.trunk import first_adapted_layer

        resolved = modeling.resolve(sft)
        self.tokenizer = modeling.load_tokenizer(resolved)
        self.base = modeling.load_model(resolved, mode="lora", task="reward", num_labels=1)
        rm.truncate_layers(self.base, keep_layers)
        self.lora_layers, self.max_length = lora_layers, max_length
        self.start_layer = first_adapted_layer(self.base, lora_layers)
        self.trunk: dict[tuple[str, str], object] = {}
        self._uncached = listwise.cache_trunk

    def __enter__(self):
        from rlhf.train import listwise

        listwise.cache_trunk = self.cache_trunk  # listwise.train asks for the trunk of its groups: served from here
        return self

    def __exit__(self, *exc):
        from rlhf.train import listwise

        listwise.cache_trunk = self._uncached  # another model in this process must never get this model's states

    def cache_trunk(self, model, tokenizer, groups, start_layer, max_length, batch=16, progress=True):
        missing = [g for g in groups if any((repr(g.prompt), t) not in self.trunk for t in g.responses)]
        if missing:
            for g, states in zip(missing, self._uncached(model, tokenizer, missing, start_layer, max_length, batch, progress)):
                for t, st in zip(g.responses, states):
                    self.trunk[(repr(g.prompt), t)] = st
        return [[self.trunk[(repr(g.prompt), t)] for t in g.responses] for g in groups]

    def warm(self, rows: list[dict]) -> None:
        """Compute the trunk of every candidate of `rows` (once)."""
        from rlhf.train.preferences import PromptGroup

        self.cache_trunk(self.base, self.tokenizer, [PromptGroup(r["prompt"], r["texts"]) for r in rows],
                         self.start_layer, self.max_length, progress=False)

    def fit(self, groups, epochs: float, lr: float, seed: int):
        """A fresh LoRA reward model trained on `groups` (listwise Bradley-Terry, as `--trainer listwise`)."""
        import torch

        from rlhf.train import listwise, modeling

        torch.manual_seed(seed)
        model = modeling.add_lora(copy.deepcopy(self.base), "SEQ_CLS", 16, 32, self.lora_layers)
        listwise.train(model, self.tokenizer, groups, self.lora_layers,
                       listwise.Settings(epochs=epochs, prompts_per_step=4, lr=lr, warmup_steps=5, max_length=self.max_length,
                                         seed=seed, progress=False))
        return model

    def scores(self, model, rows: list[dict]) -> list[list[float]]:
        """r(x, y) of every candidate of every row (the trunk cached, the top blocks run)."""
        import torch

        from rlhf.train.listwise import _pad, rewards_from_trunk

        self.warm(rows)
        out = []
        model.eval()
        with torch.no_grad():
            for start in range(0, len(rows), 16):
                chunk = rows[start:start + 16]
                states = [self.trunk[(repr(r["prompt"]), t)] for r in chunk for t in r["texts"]]
                padded, mask = _pad(states)
                flat = rewards_from_trunk(model, padded, mask, self.start_layer).tolist()
                for r in chunk:
                    out.append(flat[:len(r["texts"])])
                    flat = flat[len(r["texts"]):]
        return out


def rubric_accuracy(scores: list[list[float]], gold: list[list[float]]) -> float:
    """Share of candidate pairs the guide separates that the RM orders the guide's way (`accuracy/rubric`).

    >>> rubric_accuracy([[1.0, 0.0, 2.0]], [[1.0, 0.0, 1.0]])  # pairs (0,1) right, (1,2) right, (0,2) a guide tie
    1.0
    """
    agree = [(s[i] > s[j]) == (g[i] > g[j]) for s, g in zip(scores, gold)
             for i in range(len(g)) for j in range(i + 1, len(g)) if g[i] != g[j]]
    return sum(agree) / len(agree) if agree else 0.0


def preference_rows(row: dict, order: list[list[int]], annotator: str) -> list[dict]:
    """One ranking as preferences-snapshot rows (prompt / chosen / rejected / annotator), ties dropped."""
    from rlhf.data.pairs import ranking_to_pairs

    answer = lambda i: row["prompt"] + [{"role": "assistant", "content": row["texts"][i]}]  # noqa: E731
    return [{"prompt": row["prompt"], "chosen": answer(a), "rejected": answer(b), "annotator": annotator}
            for a, b in ranking_to_pairs(order)]


def run_curve(bench: Bench, strategy: str, seed: int, pool: list[dict], heldout: list[dict], gold_pool, gold_held,
              args) -> list[dict]:
    """Accuracy against the guide after each round of one strategy and seed: [{"rankings", "accuracy", ...}]."""
    from rlhf.train.preferences import prompt_groups
    from rlhf.train.simulate import noisy_order
    from rlhf.train.uncertainty import item_priority

    rng = random.Random(seed)
    shuffled = list(range(len(pool)))
    rng.shuffle(shuffled)
    labeled = shuffled[:args.start]  # the same first prompts for both strategies
    # the annotator's ranking of a prompt does not depend on when it is asked: both strategies get the same labels
    orders = {i: noisy_order(gold_pool[i], args.noise, random.Random(f"{seed}-{i}")) for i in range(len(pool))}
    curve = []
    while True:
        t0 = time.time()
        rows = [r for i in labeled for r in preference_rows(pool[i], orders[i], "sim:guide:0")]
        model = bench.fit(prompt_groups(rows), args.epochs, args.lr, seed)
        acc = rubric_accuracy(bench.scores(model, heldout), gold_held)
        curve.append({"rankings": len(labeled), "accuracy": acc, "pairs": len(rows), "seconds": round(time.time() - t0, 1)})
        print(f"  {strategy:<11} seed {seed}  {len(labeled):>4} rankings  accuracy vs guide {acc:.3f}  "
              f"({curve[-1]['seconds']:.0f} s)", flush=True)
        if len(labeled) >= args.budget:
            return curve
        taken = set(labeled)
        rest = [i for i in shuffled if i not in taken]
        n = min(args.step, args.budget - len(labeled), len(rest))
        if n <= 0:
            return curve
        if strategy == "random":
            labeled += rest[:n]
        else:
            scored = bench.scores(model, [pool[i] for i in rest])
            by_priority = sorted(zip(rest, scored), key=lambda x: -item_priority([x[1]])[0])
            labeled += [i for i, _ in by_priority[:n]]


def summarize(curves: dict[str, list[list[dict]]]) -> dict:
    """Mean accuracy per budget per strategy, random's final accuracy, and the fewest rankings uncertainty needs to reach it."""
    import statistics

    table = {}
    for strategy, runs in curves.items():
        sizes = [p["rankings"] for p in runs[0]]
        table[strategy] = [{"rankings": n, "mean": statistics.mean(r[k]["accuracy"] for r in runs),
                            "sd": statistics.pstdev([r[k]["accuracy"] for r in runs])} for k, n in enumerate(sizes)]
    final = table["random"][-1]
    reached = next((p["rankings"] for p in table["uncertainty"] if p["mean"] >= final["mean"]), None)
    share = reached / final["rankings"] if reached is not None else None
    return {"table": table, "random_final": final["mean"], "random_budget": final["rankings"],
            "uncertainty_reaches_at": reached, "share_of_rankings": share,
            "target_met": share is not None and share <= TARGET_SHARE}


def plot(table: dict, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for strategy, points in table.items():
        x = [p["rankings"] for p in points]
        y = [p["mean"] for p in points]
        sd = [p["sd"] for p in points]
        ax.plot(x, y, marker="o", label=strategy)
        ax.fill_between(x, [a - b for a, b in zip(y, sd)], [a + b for a, b in zip(y, sd)], alpha=0.2)
    ax.axhline(table["random"][-1]["mean"], color="grey", lw=0.8, ls="--", label="random's final accuracy")
    ax.set_xlabel("rankings collected")
    ax.set_ylabel("held-out accuracy vs the guide")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--guide", default=str(REPO / "bench" / "style_guides" / "structure.py") + ":score",
                    help="the annotators' judge: a style guide path.py:function or a shipped rubric")
    ap.add_argument("--noise", type=float, default=0.1, help="fraction of the guide's pairs the simulated annotator flips")
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (first prompts, labels' noise, RM init)")
    ap.add_argument("--start", type=int, default=20, help="ranked prompts before the first round")
    ap.add_argument("--step", type=int, default=20, help="prompts ranked per round")
    ap.add_argument("--budget", type=int, default=100, help="rankings collected in the end (same for both strategies)")
    ap.add_argument("--k", type=int, default=4, help="candidates per prompt")
    ap.add_argument("--tokens", type=int, default=48, help="longest candidate in tokens")
    ap.add_argument("--keep-layers", type=int, default=6, help="bottom blocks of the SFT model the RM keeps (as rm.yaml)")
    ap.add_argument("--lora-layers", type=int, default=2, help="LoRA on the top N kept blocks; the rest is a cached trunk")
    ap.add_argument("--epochs", type=float, default=3.0, help="listwise passes over the ranked prompts per round")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--max-length", type=int, default=192)
    ap.add_argument("--heldout", type=int, default=0, help="held-out prompts to judge on (0 = all)")
    ap.add_argument("--smoke", action="store_true", help="tiny settings: 1 seed, 4 -> 8 rankings, 8 held-out prompts")
    ap.add_argument("--work", default=None, help="cache folder (default RLHF_HOME/bench-rm-generalization)")
    ap.add_argument("--home", default=None, help="use this workspace's stored candidates instead of the cached one (with --sft)")
    ap.add_argument("--sft", default=None, help="with --home: the model version whose candidates to rank (NAME@vN or folder)")
    args = ap.parse_args(argv)
    if bool(args.home) != bool(args.sft):
        ap.error("--home and --sft go together: a workspace and the model whose candidates it holds")
    if args.smoke:
        args.seeds, args.start, args.step, args.budget, args.heldout, args.epochs = "0", 4, 4, 8, 8, 1.0
    seeds = [int(s) for s in args.seeds.split(",")]
    work, log = work_folder(args.work)
    t0 = time.time()
    if args.home:
        home, sft = Path(args.home).resolve(), args.sft
    else:
        base, prompts, sft = base_workspace(work, 0, log)
        home = candidate_workspace(work, base, prompts, sft, args.k, args.tokens, 0, log)
    pool, heldout = load_candidates(home, sft)
    heldout = heldout[:args.heldout or None]
    if args.budget > len(pool):
        raise SystemExit(f"bench: --budget {args.budget} is more than the {len(pool)} training prompts with candidates")

    from rlhf.rubrics import load_rubric, prompt_text

    _, guide = load_rubric(args.guide)
    gold = lambda rows: [[float(guide(prompt_text(r["prompt"]), t)) for t in r["texts"]] for r in rows]  # noqa: E731
    gold_pool, gold_held = gold(pool), gold(heldout)
    curves: dict[str, list[list[dict]]] = {s: [] for s in STRATEGIES}
    with Bench(sft, args.keep_layers, args.lora_layers, args.max_length) as bench:
        t_trunk = time.time()
        bench.warm(pool + heldout)
        print(f"bench: {len(pool)} training prompts, {len(heldout)} held-out; frozen trunk of "
              f"{sum(len(r['texts']) for r in pool + heldout)} candidates in {time.time() - t_trunk:.0f} s", flush=True)
        for seed in seeds:
            for strategy in STRATEGIES:
                curves[strategy].append(run_curve(bench, strategy, seed, pool, heldout, gold_pool, gold_held, args))
    summary = summarize(curves)
    guide_name = Path(args.guide.rpartition(":")[0]).stem or args.guide
    out_dir = work / "active_learning"
    out_dir.mkdir(exist_ok=True)
    png = plot(summary["table"], out_dir / f"learning_curve_{guide_name}.png",
               f"RM accuracy vs rankings: {guide_name}, noise {args.noise}, {len(seeds)} seeds (mean ± sd)")

    seconds = round(time.time() - t0, 1)
    print(f"\n=== RM accuracy against {guide_name} on {len(heldout)} held-out prompts, mean ± sd over seeds {args.seeds} "
          f"({seconds:.0f} s)\n  {'rankings':>8}  " + "  ".join(f"{s:>15}" for s in STRATEGIES))
    for k, p in enumerate(summary["table"]["random"]):
        print(f"  {p['rankings']:>8}  " + "  ".join(f"{summary['table'][s][k]['mean']:>8.3f} ± {summary['table'][s][k]['sd']:.3f}"
                                                  for s in STRATEGIES))
    reached = summary["uncertainty_reaches_at"]
    print(f"random's final accuracy {summary['random_final']:.3f} at {summary['random_budget']} rankings; uncertainty "
          + (f"reaches it at {reached} ({summary['share_of_rankings']:.0%} of the rankings)" if reached else "never reaches it")
          + f": target (<= {TARGET_SHARE:.0%}) {'met' if summary['target_met'] else 'NOT met'}\nplot: {png}")
    result = {"bench": "active_learning", "guide": args.guide, "noise": args.noise, "seeds": seeds,
              "heldout_prompts": len(heldout), "pool_prompts": len(pool), **summary, "curves": curves, "plot": str(png),
              "seconds": seconds}
    (out_dir / f"result_{guide_name}.json").write_text(json.dumps(result, indent=1))
    print("RESULT " + json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
