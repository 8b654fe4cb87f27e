"""`rlhf queue prioritize`: the uncertainty queue's priorities from the latest reward model(s) (issue 16)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from rlhf.cli import app

queue_app = typer.Typer(help="The labeling queue: which rank items people see first.", no_args_is_help=True)
app.add_typer(queue_app, name="queue")


@queue_app.command("prioritize")
def prioritize(model: Annotated[str, typer.Option(help="reward model NAME@vN (rm@latest), or a comma list of several "
                                                       "(rm@v1,rm@v2): an ensemble, prioritized by its disagreement")] = "rm@latest",
               batch_items: Annotated[int, typer.Option(help="rank items scored per forward pass")] = 8,
               max_length: Annotated[int, typer.Option(help="longest prompt + answer in tokens (prompts cut from the left)")] = 256,
               limit: Annotated[int, typer.Option(help="score only the oldest N open items (0 = all)")] = 0):
    """Score every open rank item's candidates and store each item's priority (small margin or disagreement = high)."""
    from rlhf.train.uncertainty import prioritize as run

    report = run([m for m in model.split(",") if m], batch_items=batch_items, max_length=max_length, limit=limit or None)
    typer.echo(f"{report.items} rank items ({report.responses} candidates) prioritized with {', '.join(report.models)} "
               f"in {report.seconds:.0f} s; most uncertain: "
               + (", ".join(f"item {i} ({p:+.3f})" for i, p in report.top) or "none"))
    typer.echo("RESULT " + json.dumps({"prioritize": report.summary()}))
