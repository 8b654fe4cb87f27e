"""Reports for people: the agreement and A/B numbers as text, table rows, markdown and plots.

The numbers come from `rlhf.review.agreement` and `rlhf.review.ab`; nothing here computes a statistic.
`rlhf agreement` prints `agreement_text`, the app's dashboard shows `agreement_item_rows` /
`agreement_annotator_rows` and `agreement_plot`; `rlhf review-session report` writes `write_ab_report`
(markdown with `ab_plot` beside it).
"""

from __future__ import annotations

import math
from pathlib import Path

from sqlalchemy.orm import Session

from rlhf.review import ab
from rlhf.review.agreement import AgreementReport


def _new_figure(ncols: int, figsize: tuple[float, float]):
    """A matplotlib figure on the file-only backend (no display needed), laid out by matplotlib's constrained
    layout: legends placed outside an axes get room of their own instead of covering a title or the data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=figsize, layout="constrained")


def _save(fig, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- agreement


def fmt(x: float, digits: int = 3) -> str:
    """A number for a report; "n/a" when undefined."""
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def agreement_text(rep: AgreementReport) -> str:
    """The plain-text tables `rlhf agreement` prints (and the dashboard mirrors)."""
    lines = [f"Rankings: {rep.rankings} by {len([a for a in rep.annotators if a.rankings])} annotators; "
             f"{len(rep.items)} items ranked by 2+ annotators",
             f"Overall: Krippendorff's alpha (ordinal) = {fmt(rep.alpha)}, mean pairwise Kendall tau-b = {fmt(rep.mean_tau)}",
             "", "Items (ranked by 2+ annotators):",
             f"  {'prompt':<24} {'tags':<18} {'n':>2} {'alpha':>7} {'tau':>7}  status"]
    for it in rep.items:
        status = (f"adjudicated by {it.adjudicated_by}" if it.adjudicated_by else
                  "CONTESTED -> adjudication queue" if it.contested(rep.threshold) else "ok")
        lines.append(f"  {it.external_id[:24]:<24} {','.join(it.tags)[:18]:<18} {len(it.annotators):>2} "
                     f"{fmt(it.alpha):>7} {fmt(it.mean_tau):>7}  {status}")
    if not rep.items:
        lines.append("  (none yet: agreement needs prompts ranked by two or more annotators)")
    lines += ["", "Annotators:",
              f"  {'annotator':<16} {'rank':>4} {'tau~cons':>8} {'tau~exp':>8} {'approved':>9} "
              f"{'first-shown wins':>18} {'longest wins':>18}"]
    for a in rep.annotators:
        pos = f"{fmt(a.position.rate, 2)} vs {fmt(a.position.chance, 2)}" if a.position.n else "n/a"
        ln = f"{fmt(a.length.rate, 2)} vs {fmt(a.length.chance, 2)}" if a.length.n else "n/a"
        appr = f"{a.approved}/{a.approved + a.rejected}" if a.approved + a.rejected else "-"
        lines.append(f"  {a.annotator[:16]:<16} {a.rankings:>4} {fmt(a.tau_consensus):>8} {fmt(a.tau_expert):>8} {appr:>9} "
                     f"{pos:>18} {ln:>18}")
    lines += ["", f"Adjudication queue (alpha < {rep.threshold:g}, not yet adjudicated): {len(rep.queue)} item(s)"
              + (": " + ", ".join(it.external_id for it in rep.queue) if rep.queue else "")]
    return "\n".join(lines)


def agreement_item_rows(rep: AgreementReport) -> list[list]:
    """Rows for a table widget: prompt, tags, annotators, alpha, tau, status."""
    return [[it.external_id, ", ".join(it.tags), ", ".join(it.annotators), round(it.alpha, 3) if not math.isnan(it.alpha) else None,
             round(it.mean_tau, 3) if not math.isnan(it.mean_tau) else None,
             f"adjudicated by {it.adjudicated_by}" if it.adjudicated_by else
             ("contested" if it.contested(rep.threshold) else "ok")] for it in rep.items]


def agreement_annotator_rows(rep: AgreementReport) -> list[list]:
    def r(x):
        return None if math.isnan(x) else round(x, 3)

    return [[a.annotator, a.rankings, r(a.tau_consensus), r(a.tau_expert), r(a.approval_rate), r(a.position.rate),
             r(a.position.chance), r(a.length.rate), r(a.length.chance)] for a in rep.annotators]


AGREEMENT_ITEM_COLUMNS = ["prompt", "tags", "annotators", "alpha", "tau", "status"]
AGREEMENT_ANNOTATOR_COLUMNS = ["annotator", "rankings", "tau vs consensus", "tau vs expert", "approval rate", "first-shown wins",
                     "chance", "longest wins", "chance "]


def agreement_plot(rep: AgreementReport, path: str | Path) -> Path:
    """A PNG: per-item alpha against the threshold, per-annotator tau with the consensus, and both biases.

    No legend sits on the data or a title: the threshold is named in its panel's title, the bias legend
    stands beside its panel, and the top is left free (the app shows the image under its own heading)."""
    fig, axes = _new_figure(3, (14, 4.2))
    ax = axes[0]
    names = [it.external_id for it in rep.items]
    vals = [0 if math.isnan(it.alpha) else it.alpha for it in rep.items]
    ax.bar(range(len(vals)), vals, color=["tab:red" if it.contested(rep.threshold) else "tab:blue" for it in rep.items])
    ax.axhline(rep.threshold, color="k", ls="--", lw=1)
    ax.set_xticks(range(len(vals)), names, rotation=60, ha="right", rotation_mode="anchor", fontsize=7)
    ax.set_title(f"alpha per item (overall {fmt(rep.alpha, 2)}; dashed: threshold {rep.threshold:g})", fontsize=10)
    ax = axes[1]
    people = [a for a in rep.annotators if a.rankings]
    ax.bar([a.annotator for a in people], [0 if math.isnan(a.tau_consensus) else a.tau_consensus for a in people])
    ax.set_ylim(-1, 1)
    ax.set_title("tau with the consensus", fontsize=10)
    ax.set_xticks(range(len(people)), [a.annotator for a in people], rotation=45, ha="right", rotation_mode="anchor",
                  fontsize=7)
    ax = axes[2]
    x = range(len(people))
    w = 0.2
    ax.bar([i - 1.5 * w for i in x], [a.position.rate if a.position.n else 0 for a in people], w, label="first shown wins")
    ax.bar([i - 0.5 * w for i in x], [a.position.chance if a.position.n else 0 for a in people], w, label="chance", alpha=0.5)
    ax.bar([i + 0.5 * w for i in x], [a.length.rate if a.length.n else 0 for a in people], w, label="longest wins")
    ax.bar([i + 1.5 * w for i in x], [a.length.chance if a.length.n else 0 for a in people], w, label="chance ", alpha=0.5)
    ax.set_xticks(list(x), [a.annotator for a in people], rotation=45, ha="right", rotation_mode="anchor", fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_title("position and length bias", fontsize=10)
    ax.legend(fontsize=7, loc="lower left", bbox_to_anchor=(1.01, 0.0), frameon=False)  # clear of the corner icons
    return _save(fig, path)


# --------------------------------------------------------------------------- A/B sessions


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.1f}%"


def _ci(t: ab.Tally) -> str:
    lo, hi = t.interval
    return "n/a" if math.isnan(lo) else f"[{100 * lo:.1f}%, {100 * hi:.1f}%]"


def _row(label: str, t: ab.Tally) -> str:
    return f"| {label} | {t.n} | {t.b} | {t.a} | {t.tie} | {_pct(t.win_rate)} | {_ci(t)} |"


def ab_markdown(rep: ab.ABReport, plot_path: str | None = None) -> str:
    """The session report as markdown (the CLI's `--out`, the app's download)."""
    head = "| | judgements | B wins | A wins | ties | B win rate | 95% interval |\n|---|---:|---:|---:|---:|---:|---|"
    g = rep.generation
    decoding = "greedy" if not g.get("temperature") else f"sampling, temperature {g['temperature']}, top-p {g.get('top_p')}"
    lines = [
        f"# Blind A/B review session ab#{rep.session_id}", "",
        f"- **A** (baseline): `{rep.model_a}`",
        f"- **B** (challenger): `{rep.model_b}`",
        f"- Prompts: `{rep.prompts_ref}` ({rep.items} items, {rep.judged_items} judged)",
        f"- Answers: {decoding}, at most {g.get('max_new_tokens')} new tokens, seed {g.get('seed')}; "
        "sides drawn at random per item, model names hidden from the judges",
        f"- Judges: {', '.join(f'{j} (simulated)' if j in rep.simulated_judges else j for j in rep.by_judge) or 'none yet'}",
        "",
        "## Result", "",
        f"**B wins {_pct(rep.overall.win_rate)} of {rep.overall.n} judgements** (ties counted half), "
        f"95% interval {_ci(rep.overall)}; {rep.overall.tie} ties.", "",
        head, _row("all", rep.overall), "",
        "Win rate `p = (wins_B + ties/2) / n`; interval: Wilson score, "
        "`(p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)`, z = 1.96. "
        "Each judge's latest verdict on each item counts once.", "",
    ]
    if plot_path:
        lines += [f"![win rate of B]({plot_path})", ""]
    lines += ["## By tag", "", head] + [_row(tag, t) for tag, t in rep.by_tag.items()] + [""]
    lines += ["## By judge", "", head] + [_row(j + (" (simulated)" if j in rep.simulated_judges else ""), t)
                                          for j, t in rep.by_judge.items()] + [""]
    lines += ["## Inter-expert agreement", ""]
    if rep.agreement:
        lines += ["| judge 1 | judge 2 | shared items | agreement | Cohen's kappa |", "|---|---|---:|---:|---:|"]
        lines += [f"| {a.judge_1} | {a.judge_2} | {a.shared} | {_pct(a.percent)} | "
                  f"{'n/a' if math.isnan(a.kappa) else f'{a.kappa:.3f}'} |" for a in rep.agreement]
    else:
        lines.append("No two judges share an item yet.")
    lines += ["", "## Items", "", "| prompt | tags | B | A | tie |", "|---|---|---:|---:|---:|"]
    lines += [f"| {it.prompt} | {', '.join(it.tags)} | {it.votes.b} | {it.votes.a} | {it.votes.tie} |" for it in rep.per_item]
    return "\n".join(lines) + "\n"


def ab_plot(rep: ab.ABReport, path: str | Path) -> Path:
    """A PNG: B's win rate with its 95% interval, overall and per tag, beside the outcome counts."""
    rows = [("all", rep.overall), *rep.by_tag.items()]
    fig, (ax1, ax2) = _new_figure(2, (11, 0.5 * len(rows) + 2.2))
    y = list(range(len(rows)))[::-1]
    for yi, (label, t) in zip(y, rows):
        if t.n:
            lo, hi = t.interval
            ax1.errorbar(t.win_rate, yi, xerr=[[t.win_rate - lo], [hi - t.win_rate]], fmt="o",
                         color="tab:red" if label == "all" else "tab:blue", capsize=3)
    ax1.axvline(0.5, color="k", ls="--", lw=1)
    ax1.set_yticks(y, [f"{label} (n={t.n})" for label, t in rows], fontsize=8)
    ax1.set_xlim(0, 1)
    ax1.set_xlabel("win rate of B over A (ties half), 95% Wilson interval")
    ax1.set_title(f"{rep.model_b} vs {rep.model_a}", fontsize=9)
    left = [0] * len(rows)
    for key, color, label in (("b", "tab:green", "B better"), ("tie", "tab:gray", "tie"), ("a", "tab:orange", "A better")):
        vals = [getattr(t, key) / t.n if t.n else 0 for _, t in rows]
        ax2.barh(y, vals, left=left, color=color, label=label)
        left = [a + b for a, b in zip(left, vals)]
    ax2.set_yticks(y, [label for label, _ in rows], fontsize=8)
    ax2.set_xlim(0, 1)
    ax2.set_xlabel("share of judgements")
    ax2.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def write_ab_report(session: Session, session_ref: int | str, out: str | Path, humans_only: bool = False) -> tuple[Path, Path, ab.ABReport]:
    """Write `out` (markdown) and its plot beside it (`<stem>.png`); returns (markdown, png, report)."""
    out = Path(out)
    rep = ab.session_report(session, session_ref, humans_only)
    png = ab_plot(rep, out.with_suffix(".png"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(ab_markdown(rep, png.name), encoding="utf-8")
    return out, png, rep
