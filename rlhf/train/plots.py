"""Training curves as PNG files in the run folder (PPO here; the trl stages use `stage.plot_history`).

    ppo_curves(run_dir / "metrics.jsonl", run_dir / "ppo_curves.png")

reads the metrics the PPO trainer appends once per update (`rlhf.train.ppo.trainer.PPOTrainer.log`) and
draws one panel per signal a reader checks first (Huang et al. 2024 watch the same ones): the RM reward,
the KL to the reference, the answer length, the share of answers that ended with EOS, and the value loss.
"""

from __future__ import annotations

import json
from pathlib import Path

PPO_PANELS = (
    ("objective/reward", "RM reward (mean)"),
    ("objective/kl", "KL to reference (nats/answer)"),
    ("val/mean_response_length", "answer length (tokens)"),
    ("val/eos_fraction", "EOS rate"),
    ("loss/value", "value loss"),
)
"""(metric name in metrics.jsonl, panel title)"""


def read_metrics(path: str | Path) -> list[dict]:
    """The rows of a metrics.jsonl; a line cut short by a kill (the last one) is skipped."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def ppo_curves(metrics_jsonl_path: str | Path, out_png: str | Path, title: str = "PPO") -> Path | None:
    """A PNG with one panel per `PPO_PANELS` metric against the update; None when no update was logged.

    A resumed run appends to the same file: the last row of each update counts.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(metrics_jsonl_path)
    by_update = {r["update"]: r for r in read_metrics(path) if "update" in r} if path.is_file() else {}
    if not by_update:
        return None
    updates = sorted(by_update)
    fig, axes = plt.subplots(1, len(PPO_PANELS), figsize=(3.2 * len(PPO_PANELS), 3.0))
    for ax, (key, label) in zip(axes, PPO_PANELS):
        pts = [(u, by_update[u][key]) for u in updates if isinstance(by_update[u].get(key), (int, float))]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("update")
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png
