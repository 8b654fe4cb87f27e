"""`rlhf generate` (candidates), `rlhf simulate rank` (simulated annotators), `rlhf score` (a reward model)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from rlhf.cli import app
from rlhf.errors import InputError, RlhfError

simulate_app = typer.Typer(help="Simulated annotators (a rubric plus noise), for demos, tests and experiments.",
                           no_args_is_help=True)
app.add_typer(simulate_app, name="simulate")


@app.command("generate")
def generate(model: Annotated[str, typer.Option(help="built-in name, local HF folder, or registered NAME@vN")],
             prompts: Annotated[str, typer.Option(help="prompts snapshot NAME@vN (or prompts@latest)")] = "prompts@latest",
             k: Annotated[int, typer.Option(help="answers per prompt")] = 4,
             split: Annotated[str, typer.Option(help="train | heldout | all prompts of the snapshot")] = "all",
             max_new_tokens: Annotated[int, typer.Option(help="longest answer in tokens")] = 64,
             temperature: Annotated[float, typer.Option(help="sampling temperature")] = 0.8,
             top_p: Annotated[float, typer.Option(help="nucleus sampling mass")] = 0.95,
             batch_size: Annotated[int, typer.Option(help="sequences per generate call")] = 64,
             seed: Annotated[int, typer.Option(help="sampling seed")] = 0,
             precision: Annotated[str, typer.Option(help="auto (bf16 on a GPU or a CPU with native bf16) | bf16 | fp32")] = "auto"):
    """Sample K answers per prompt and store them as candidates to rank (skips prompts that already have K)."""
    from rlhf.train.generate import generate_candidates
    from rlhf.train.sampling import Sampling

    sampling = Sampling(k=k, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, batch_size=batch_size,
                        seed=seed, precision=precision)
    report = generate_candidates(model, prompts, sampling, split=split)
    typer.echo(f"{report.model_version} on {report.prompts_ref}: {report.added} responses added for "
               f"{report.prompts_seen - report.prompts_skipped} prompts ({report.prompts_skipped} already had {k}); "
               f"{report.empty} empty and {report.duplicates} duplicate answers not stored; {report.seconds:.0f} s")
    typer.echo("RESULT " + json.dumps({"generate": report.summary()}))


@simulate_app.command("rank")
def simulate_rank(rubric: Annotated[str, typer.Option(help="a shipped rubric (concise_helpful, concise_relevant, length_only) or path/to/file.py:function")] = "concise_helpful",
                  noise: Annotated[str, typer.Option(help="expected fraction of the rubric's pairs flipped, in [0, 0.5]; "
                                                          "a comma list gives one level per annotator (e.g. 0.05,0.2,0.45)")] = "0.1",
                  model_version: Annotated[str | None, typer.Option(help="rank only responses of this model version (e.g. sft@v1)")] = None,
                  prompts: Annotated[str | None, typer.Option(help="rank only prompts of this snapshot NAME@vN")] = None,
                  seed: Annotated[int, typer.Option(help="noise seed")] = 0,
                  annotators: Annotated[int, typer.Option(help="number of simulated annotators sim:<rubric>:<i>")] = 1,
                  overlap: Annotated[int, typer.Option(help="annotators per prompt (>1 gives agreement metrics)")] = 1,
                  approve: Annotated[bool, typer.Option(help="store the rankings approved (default: pending review)")] = False):
    """Rank each prompt's stored model responses with a rubric plus noise; stored as origin "simulated"."""
    from rlhf.train.simulate import simulate_rankings

    try:
        levels = [float(x) for x in noise.split(",")]
    except ValueError:
        raise RlhfError(f"--noise {noise!r}: expected a number or a comma list of numbers") from None
    report = simulate_rankings(rubric, levels if len(levels) > 1 else levels[0], model_version=model_version,
                               prompts_ref=prompts, seed=seed,
                               annotators=annotators, overlap=overlap, approve=approve)
    typer.echo(f"{report.added} simulated rankings ({report.status}) by {', '.join(report.annotators)}: {report.pairs} pairs, "
               f"{report.flip_rate:.3f} of the rubric's pairs flipped (noise {noise}); {report.prompts_short} prompts with "
               f"fewer than 2 responses, {report.already_ranked} already ranked")
    typer.echo("RESULT " + json.dumps({"simulate": report.summary()}))


def read_score_rows(file: Path) -> tuple[list[list[dict]], list[str]]:
    """Rows {"prompt": text or messages, "response": text} -> (prompt messages, responses); errors name FILE:LINE: FIELD."""
    from rlhf.data.formats import Checker, read_jsonl

    prompts, responses = [], []
    for line, obj in read_jsonl(file):
        c = Checker(str(file), line, obj)
        if "prompt" not in obj:
            c.fail("prompt", "missing required field (a string, or a list of chat messages)")
        if isinstance(obj["prompt"], str):
            messages = [{"role": "user", "content": c.text("prompt", obj["prompt"])}]
        else:
            messages = c.messages("prompt")
        response = c.text("response", c.require("response", str))
        prompts.append(messages)
        responses.append(response)
    if not responses:
        raise InputError(str(file), None, None, "the file has no rows")
    return prompts, responses


@app.command("score")
def score(file: Annotated[Path, typer.Argument(help='JSONL rows {"prompt": text or messages, "response": text}')],
          model: Annotated[str, typer.Option(help="reward model NAME@vN (e.g. rm@latest) or a local folder")] = "rm@latest",
          out: Annotated[Path | None, typer.Option(help="write the scored rows here (JSONL) instead of stdout")] = None,
          batch_size: Annotated[int, typer.Option(help="responses per forward pass")] = 16,
          max_length: Annotated[int, typer.Option(help="longest prompt + response in tokens (prompts cut from the left)")] = 1024):
    """Reward of each prompt + response row: prints (or writes) the rows with a "reward" field."""
    from rlhf.train import modeling
    from rlhf.data.formats import read_jsonl
    from rlhf.train.reward import score_texts

    prompts, responses = read_score_rows(file)  # every row checked before the model loads
    resolved = modeling.resolve(model)
    config_file = resolved.path / "config.json"
    if config_file.exists():
        arch = json.loads(config_file.read_text()).get("architectures") or []
        if not any(a.endswith("ForSequenceClassification") for a in arch):
            raise RlhfError(f"--model {model}: {', '.join(arch) or 'this model'} is not a reward model "
                            "(a sequence classifier with one output): train one with `just rm`")
    tokenizer = modeling.load_tokenizer(resolved)
    net = modeling.load_model(resolved, mode="full", task="reward")
    if getattr(net.config, "num_labels", 1) != 1:
        raise RlhfError(f"--model {model}: has {net.config.num_labels} outputs; a reward model has one (train one with `just rm`)")
    rewards = score_texts(net, tokenizer, prompts, responses, batch_size=batch_size, max_length=max_length,
                          progress=out is not None)
    lines = [json.dumps({**obj, "reward": round(r, 6)}, ensure_ascii=False) for (_, obj), r in zip(read_jsonl(file), rewards)]
    if out is None:
        sys.stdout.write("\n".join(lines) + "\n")
    else:
        tmp = out.with_suffix(out.suffix + ".tmp")
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        tmp.replace(out)
        typer.echo(f"{len(lines)} rows scored with {model}: {out}", err=True)
