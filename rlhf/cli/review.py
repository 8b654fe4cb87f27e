"""`rlhf agreement`, `rlhf review-session ...` (blind A/B of two model versions), `rlhf review ...`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rlhf.cli import app
from rlhf.errors import RlhfError

session_app = typer.Typer(help="Blind A/B review sessions: two model versions, experts pick A, B or tie.",
                          no_args_is_help=True)
review_app = typer.Typer(help="The expert review queue from the command line (the app has the same actions).",
                         no_args_is_help=True)
app.add_typer(session_app, name="review-session")
app.add_typer(review_app, name="review")

ReviewerOpt = Annotated[str, typer.Option("--reviewer", "-r", help="the expert or admin doing this (a user name)")]


@app.command("agreement")
def agreement_cmd(
        threshold: Annotated[float, typer.Option(help="items with ordinal alpha below this go to the adjudication queue")] = 0.5,
        include_simulated: Annotated[bool, typer.Option(help="also count rankings by simulated annotators")] = False,
        plot: Annotated[Path | None, typer.Option(help="also write the dashboard's plots to this PNG")] = None):
    """Inter-annotator agreement on rankings: Krippendorff's alpha, Kendall tau, bias, adjudication queue."""
    from rlhf.review import agreement, reports
    from rlhf.data.store import session_scope

    with session_scope() as s:
        rep = agreement.report(s, threshold, include_simulated)
    typer.echo(reports.agreement_text(rep))
    if plot:
        typer.echo(f"plot: {reports.agreement_plot(rep, plot)}")


@session_app.command("create")
def session_create(
        a: Annotated[str, typer.Option("--a", help="model A, the baseline: NAME@vN, a folder or the built-in model")],
        b: Annotated[str, typer.Option("--b", help="model B, the challenger: the report gives B's win rate")],
        prompts: Annotated[str, typer.Option("--prompts", help="a registry snapshot NAME@vK (e.g. prompts@v1)")],
        max_new_tokens: Annotated[int, typer.Option(help="longest answer in tokens")] = 128,
        temperature: Annotated[float, typer.Option(help="0 = greedy; > 0 = seeded sampling")] = 0.0,
        seed: Annotated[int, typer.Option(help="seeds sampling, the sides and the order of items")] = 0,
        split: Annotated[str | None, typer.Option(help="only prompts of this split (train | heldout)")] = None,
        limit: Annotated[int | None, typer.Option(help="at most this many prompts")] = None,
        created_by: Annotated[str, typer.Option(help="who asked for the session (recorded)")] = ""):
    """Generate both models' answers to the snapshot's prompts and open a blind session; prints ab#ID."""
    from rlhf.review import ab
    from rlhf.data.store import session_scope

    gen = ab.Generation(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    with session_scope() as s:
        sess = ab.create_session(s, a, b, prompts, gen, split=split, limit=limit, created_by=created_by)
        sid, name = sess.id, sess.name
        items = next(n for row, n, _ in ab.list_sessions(s) if row.id == sid)
    typer.echo(f"ab#{sid}")
    typer.echo(f"{name}: {items} items; judge in the app's A/B page, or "
               f"`rlhf review-session judge-simulated {sid} --rubric concise_helpful`", err=True)


@session_app.command("list")
def session_list():
    """Every session with its item and judgement counts, newest first."""
    from rlhf.review import ab
    from rlhf.data.store import session_scope

    with session_scope() as s:
        rows = ab.list_sessions(s)
        if not rows:
            typer.echo("no review sessions yet: rlhf review-session create --a MODEL@vN --b MODEL@vM --prompts prompts@vK")
        for sess, items, judged in rows:
            state = "closed" if sess.closed_at else "open"
            typer.echo(f"ab#{sess.id:<4} {items:>4} items {judged:>5} judgements  {state:<6} {sess.name}  "
                       f"{sess.created_at:%Y-%m-%d %H:%M}")


@session_app.command("judge-simulated")
def session_judge_simulated(
        session_id: Annotated[str, typer.Argument(metavar="SESSION", help="ab#ID or ID")],
        rubric: Annotated[str, typer.Option(help="a shipped rubric (concise_helpful, concise_relevant, length_only) or path/file.py:function")] = "concise_helpful",
        tie_margin: Annotated[float, typer.Option(help="rubric scores closer than this are a tie")] = 0.05):
    """Let a rubric play the expert on every item it has not judged (stored as simulated)."""
    from rlhf.review import ab
    from rlhf.data.store import session_scope

    with session_scope() as s:
        name, added = ab.judge_simulated(s, session_id, rubric, tie_margin)
        rep = ab.session_report(s, session_id)
    lo, hi = rep.overall.interval
    typer.echo(f"{name}: {added} judgements added; B win rate {rep.overall.win_rate:.3f} [{lo:.3f}, {hi:.3f}] "
               f"over {rep.overall.n} judgements ({rep.overall.tie} ties)")


@session_app.command("close")
def session_close(
        session_id: Annotated[str, typer.Argument(metavar="SESSION", help="ab#ID or ID")],
        by: Annotated[str | None, typer.Option(help="the admin closing it (checked when given)")] = None):
    """End judging: the session takes no more judgements and its report shows model names and every judge's tally."""
    from rlhf.review import ab
    from rlhf.data.store import session_scope

    with session_scope() as s:
        sess, now = ab.close_session(s, session_id, by)
        sid, when = sess.id, sess.closed_at
    state = "closed" if now else "was already closed"
    typer.echo(f"ab#{sid} {state} {when:%Y-%m-%d %H:%M} UTC: its report now names the models "
               f"(rlhf review-session report {sid})")


@session_app.command("report")
def session_report(
        session_id: Annotated[str, typer.Argument(metavar="SESSION", help="ab#ID or ID")],
        out: Annotated[Path | None, typer.Option(help="write markdown here (and its plot as <stem>.png beside it)")] = None,
        humans_only: Annotated[bool, typer.Option(help="leave out simulated judges")] = False):
    """Win rate of B over A with a 95% interval, ties, per tag, per judge, inter-expert agreement."""
    from rlhf.review import ab, reports
    from rlhf import paths
    from rlhf.data.store import session_scope

    with session_scope() as s:
        sid = ab.get_session(s, session_id).id
        target = out or paths.home() / "reports" / f"ab-{sid}" / "report.md"
        md, png, rep = reports.write_ab_report(s, sid, target, humans_only)
    if out is None:
        typer.echo(md.read_text(encoding="utf-8"))
    typer.echo(f"report: {md}\nplot: {png}", err=out is None)


# --------------------------------------------------------------------------- the review queue


@review_app.command("queue")
def review_queue(kind: Annotated[str | None, typer.Option(help="demonstration | ranking")] = None,
                 tag: Annotated[str | None, typer.Option(help="only prompts with this tag")] = None,
                 annotator: Annotated[str | None, typer.Option(help="only this annotator's items")] = None,
                 limit: Annotated[int, typer.Option(help="show at most this many")] = 50):
    """Pending demonstrations and rankings, oldest first."""
    from rlhf.review import actions as review
    from rlhf.data.store import session_scope

    with session_scope() as s:
        items = review.queue(s, kind, tag, annotator)
    typer.echo(f"{len(items)} item(s) waiting for review")
    for it in items[:limit]:
        text = it.answer if it.kind == "demonstration" else f"{len(it.responses)} responses, order {it.order}"
        typer.echo(f"{it.key:<18} {it.created_at:%Y-%m-%d %H:%M}  {it.annotator[:14]:<14} {it.prompt_external_id[:22]:<22} "
                   f"{','.join(it.tags)[:16]:<16} {' '.join(text.split())[:60]}")


def _act(action: str, reviewer: str, item: str, reason: str | None, text: str | None = None) -> None:
    from rlhf.review import actions as review
    from rlhf.data.store import session_scope

    kind, item_id = review.parse_key(item)
    with session_scope() as s:
        if action == "approve":
            review.approve(s, reviewer, kind, item_id, reason)
            typer.echo(f"{item} approved by {reviewer}")
        elif action == "reject":
            review.reject(s, reviewer, kind, item_id, reason or "")
            typer.echo(f"{item} rejected by {reviewer}: {reason}")
        else:
            if kind != "demonstration":
                raise RlhfError("only demonstrations can be edited; reject a ranking or adjudicate its prompt")
            res = review.edit_demonstration(s, reviewer, item_id, text or "", reason)
            typer.echo(f"demonstration:{res.new.id} (version {res.new.version} of {item}) approved; "
                       f"preference ranking:{res.preference.id} (edited > original) added")


@review_app.command("approve")
def review_approve(item: Annotated[str, typer.Argument(help="demonstration:ID or ranking:ID")], reviewer: ReviewerOpt,
                   reason: Annotated[str | None, typer.Option(help="optional note")] = None):
    """Approve an item: it enters default snapshots."""
    _act("approve", reviewer, item, reason)


@review_app.command("reject")
def review_reject(item: Annotated[str, typer.Argument(help="demonstration:ID or ranking:ID")], reviewer: ReviewerOpt,
                  reason: Annotated[str, typer.Option(help="what is wrong (required)")]):
    """Reject an item with a reason."""
    _act("reject", reviewer, item, reason)


@review_app.command("edit")
def review_edit(item: Annotated[str, typer.Argument(help="demonstration:ID")], reviewer: ReviewerOpt,
                text: Annotated[str, typer.Option(help="the corrected answer")],
                reason: Annotated[str | None, typer.Option(help="why it was changed")] = None):
    """Store a corrected answer as a new version (the original is kept) plus an (edited > original) pair."""
    _act("edit", reviewer, item, reason, text)


@review_app.command("gold")
def review_gold(item: Annotated[str, typer.Argument(help="a label item: its id or key (rank:PROMPT_ID:MODEL@vN, write:PROMPT_ID)")],
                reviewer: ReviewerOpt,
                ranks: Annotated[str | None, typer.Option(help="rank item: the rank of each answer in the item's order, e.g. '1 2 2 3'")] = None,
                ranking: Annotated[int | None, typer.Option(help="rank item: take the order of this stored ranking of the same answers")] = None,
                demonstration: Annotated[int | None, typer.Option(help="write item: an approved demonstration of its prompt")] = None):
    """Mark a label item gold with a reference (idempotent): mixed into queues at the gold_rate setting, unmarked."""
    from rlhf.data import gold
    from rlhf.data.formats import ranks_to_order
    from rlhf.data.store import session_scope
    from rlhf.data.store.models import Ranking

    if sum(x is not None for x in (ranks, ranking, demonstration)) != 1:
        raise RlhfError("give exactly one reference: --ranks or --ranking (rank item), or --demonstration (write item)")
    with session_scope() as s:
        it = gold.find_item(s, item)
        order = None
        if ranks is not None:
            order = ranks_to_order(ranks.replace(",", " ").split(), k=len(it.response_ids))
        elif ranking is not None:
            r = s.get(Ranking, ranking)
            if r is None or sorted(r.response_ids) != sorted(it.response_ids):
                raise RlhfError(f"ranking {ranking} does not rank exactly the answers of item {it.key}")
            order = [sorted(it.response_ids.index(r.response_ids[i]) for i in group) for group in r.order]
        row, status = gold.mark_gold(s, reviewer, it.id, order=order, demonstration_id=demonstration, login=False)
        ref = f"order {row.order}" if row.order is not None else f"demonstration {row.demonstration_id}"
        typer.echo(f"item {it.id} ({it.key}): {status} gold by {reviewer}, reference {ref}")
