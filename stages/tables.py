"""The recipes' tables: the demo's before/after and method tables, the loop's per-round rows, its table, and each
round's policy against round 1's (from the answers the PPO stages stored). Numbers in, text out: no stage runs here.
"""

from __future__ import annotations

import json
from pathlib import Path


def columns(rows: list[tuple[str, ...]]) -> str:
    """Rows as aligned text columns: the first left-aligned, the others right-aligned; the first row is the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  " + "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
                     for row in rows)


def policy_key(result: dict) -> str:
    """The key of the trained policy's summary in a stage's RESULT (`ppo` for PPO and RLOO, `dpo` for DPO)."""
    return "dpo" if "dpo" in result else "ppo"


def method_table(sft: dict, results: dict) -> str:
    """One row per method (and SFT): RM reward, rubric score, KL, length, EOS rate, win rate [95% interval], seconds."""
    rows = [("policy", "RM reward", "rubric", "KL", "length", "EOS", "win rate vs SFT [95%]", "seconds"),
            ("SFT", f"{sft['reward']:+.3f}", f"{sft['rubric']:.3f}", "0.00", f"{sft['length']:.1f}",
             f"{sft.get('eos', float('nan')):.2f}", "", "")]
    for method, r in results.items():
        s, ci = r[policy_key(r)], r.get("win_rate_ci") or [float("nan")] * 2
        rows.append((method.upper(), f"{s['reward']:+.3f}", f"{s['rubric']:.3f}", f"{s['kl']:.2f}", f"{s['length']:.1f}",
                     f"{s.get('eos', float('nan')):.2f}", f"{r['win_rate']:.3f} [{ci[0]:.2f}, {ci[1]:.2f}]",
                     f"{r['seconds']:.0f}"))
    return columns(rows)


def round_row(n: int, rm: dict, ppo: dict, kl: dict) -> dict:
    """One round's numbers from its RM and PPO stages' and `rlhf round kl`'s RESULT summaries."""
    after, before = ppo["ppo"], ppo["sft"]
    return {"round": n, "rm": rm["model"], "policy": ppo["model"], "rm_accuracy": rm.get("accuracy"),
            "rm_accuracy_rubric": rm.get("accuracy_rubric"), "reward": after["reward"], "rubric": after["rubric"],
            "rubric_before": before["rubric"], "kl_to_previous": after["kl"], "kl_to_first": kl.get("kl"),
            "length": after["length"],
            "win_rate_vs_previous": ppo["win_rate"], "win_rate_ci": ppo.get("win_rate_ci"),
            "seconds": ppo.get("seconds")}


def versus_first(rows: list[dict], samples: list[str | None]) -> None:
    """Each round's policy against round 1's on the same held-out prompts, by the rubric scores the PPO stages stored
    (`heldout_samples.json`): `win_rate_vs_first` and its 95% interval (ties half), None where a file is missing."""
    from rlhf.train.ppo.evaluate import win_interval, win_rate  # torch, only when a table needs it

    def scores(path):
        if not path or not Path(path).is_file():
            return None
        rows_ = json.loads(Path(path).read_text())
        return [r["prompt"] for r in rows_], [r["rubric_ppo"] for r in rows_]

    first = scores(samples[0]) if samples else None
    for row, path in zip(rows, samples):
        now = scores(path)
        ok = first is not None and now is not None and now[0] == first[0]
        row["win_rate_vs_first"] = win_rate(now[1], first[1]) if ok else None
        row["win_rate_vs_first_ci"] = win_interval(now[1], first[1]) if ok else None


def rounds_table(rows: list[dict]) -> str:
    head = ("round", "RM", "RM acc", "RM acc rubric", "policy", "RM reward", "rubric", "KL prev", "KL first",
            "win vs prev [95%]", "win vs round 1 [95%]")
    lines = [head]
    for r in rows:
        ci = r.get("win_rate_ci") or [float("nan")] * 2
        acc_r, first, first_ci = r["rm_accuracy_rubric"], r.get("win_rate_vs_first"), r.get("win_rate_vs_first_ci")
        lines.append((str(r["round"]), r["rm"], f"{r['rm_accuracy']:.3f}", "n/a" if acc_r is None else f"{acc_r:.3f}",
                      r["policy"], f"{r['reward']:+.3f}", f"{r['rubric_before']:.3f} -> {r['rubric']:.3f}",
                      f"{r['kl_to_previous']:.2f}", "n/a" if r["kl_to_first"] is None else f"{r['kl_to_first']:.2f}",
                      f"{r['win_rate_vs_previous']:.3f} [{ci[0]:.2f}, {ci[1]:.2f}]",
                      "n/a" if first is None or r["round"] == 1 else f"{first:.3f} [{first_ci[0]:.2f}, {first_ci[1]:.2f}]"))
    return columns(lines)
