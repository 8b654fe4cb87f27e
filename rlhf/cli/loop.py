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


round_app = typer.Typer(help="Rounds of the closed loop (`just loop`): measurements between them.", no_args_is_help=True)
app.add_typer(round_app, name="round")


@round_app.command("kl")
def round_kl(policy: Annotated[str, typer.Option(help="the policy NAME@vN (e.g. the last round's ppo@vN)")],
             reference: Annotated[str, typer.Option(help="the reference policy NAME@vN (e.g. the first SFT model)")],
             prompts: Annotated[str, typer.Option(help="prompts snapshot NAME@vN")] = "prompts@latest",
             split: Annotated[str, typer.Option(help="heldout | train | all")] = "heldout",
             limit: Annotated[int, typer.Option(help="first N prompts of the split (0 = all)")] = 40,
             max_new_tokens: Annotated[int, typer.Option(help="longest sampled answer in tokens")] = 48,
             temperature: Annotated[float, typer.Option(help="sampling temperature (the PPO stage's)")] = 0.7,
             seed: Annotated[int, typer.Option(help="sampling seed")] = 0):
    """KL(policy || reference) in nats per answer, on answers sampled from the policy (as the PPO evaluation)."""
    from rlhf.train.drift import kl_to_reference

    out = kl_to_reference(policy, reference, prompts, split, limit, max_new_tokens, temperature, seed)
    typer.echo(f"KL({out['policy']} || {out['reference']}) = {out['kl']:.3f} nats/answer on {out['prompts']} "
               f"{split} prompts of {out['prompts_ref']} ({out['seconds']:.0f} s)")
    typer.echo("RESULT " + json.dumps({"kl": out}))
