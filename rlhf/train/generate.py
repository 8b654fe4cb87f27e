"""Candidates: sample K answers per prompt from a model and store them as responses to rank.

`rlhf generate --model sft@latest --prompts prompts@latest --k 4` reads a `prompts` registry
snapshot, samples K answers per prompt (`rlhf.train.sampling.sample_answers`) and
stores each distinct, non-empty answer as a `Response` with origin "model" and the model
version it came from (e.g. `sft@v2`). All rows are written in one transaction at the end, so an
interrupted run stores nothing. A prompt that already has K responses from that model version is
skipped: re-running adds nothing.

Shapes: P prompts per call, K samples each, B = P*K sequences, T_p prompt tokens, T_n new tokens.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select

from rlhf.errors import RlhfError
from rlhf.train.sampling import Sampling, sample_answers

SPLITS = ("train", "heldout", "all")


@dataclass
class GenerateReport:
    model_version: str
    prompts_ref: str
    prompts_seen: int = 0
    prompts_skipped: int = 0  # already had K responses from this model version
    sampled: int = 0
    added: int = 0
    empty: int = 0  # answers that were empty after stripping: not stored
    duplicates: int = 0  # identical to another answer of the same prompt: stored once
    seconds: float = 0.0
    per_prompt: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("per_prompt")
        return d


def model_version_ref(spec: str) -> str:
    """What responses record as their model version: `NAME@vN` for registered models (never `@latest`),
    the built-in name, or the resolved folder path (one folder reached by two relative paths is one version)."""
    from rlhf.data import registry
    from rlhf.data.store import session_scope
    from rlhf.train import modeling

    with session_scope() as s:
        ref = registry.pin_model(s, spec)
    if ref == registry.BUILTIN or ("@" in ref and not Path(ref).expanduser().exists()):
        return ref
    return str(modeling.resolve(ref).path)


def load_prompt_rows(prompts_ref: str, split: str) -> tuple[str, list[dict]]:
    """(NAME@vN, rows) of a `prompts` snapshot, keeping `split` (train | heldout | all)."""
    from rlhf.data import registry
    from rlhf.data.store import session_scope

    if split not in SPLITS:
        raise RlhfError(f"--split {split!r}: expected one of {', '.join(SPLITS)}")
    with session_scope() as s:
        dv = registry.get_version(s, prompts_ref, kind="prompts")
        ref = dv.ref
        ds = registry.load(s, ref)
    rows = [r for r in ds.to_list() if split == "all" or r["split"] == split]
    if not rows:
        raise RlhfError(f"{ref}: no prompts in split {split!r}")
    return ref, rows


def generate_candidates(model_spec: str, prompts_ref: str, sampling: Sampling = Sampling(), split: str = "all",
                        progress: bool = True) -> GenerateReport:
    """Sample and store candidates for every prompt of the snapshot still short of K from this model version."""
    import time

    from rlhf.train import modeling
    from rlhf.data.formats import content_hash
    from rlhf.data.store import session_scope
    from rlhf.data.records import add_response
    from rlhf.data.store.models import Prompt, Response

    t0 = time.time()
    sampling.check()
    version = model_version_ref(model_spec)
    ref, rows = load_prompt_rows(prompts_ref, split)
    report = GenerateReport(model_version=version, prompts_ref=ref, prompts_seen=len(rows))

    # step 1. which prompts still need answers (counted in the store, so a re-run adds nothing)
    with session_scope() as s:
        ext_ids = [r["prompt_id"] for r in rows]
        known = dict(s.execute(select(Prompt.external_id, Prompt.id).where(Prompt.external_id.in_(ext_ids))).all())
        missing = [e for e in ext_ids if e not in known]
        if missing:
            raise RlhfError(f"{ref}: prompt {missing[0]!r} is not in the store (the snapshot comes from another workspace?)")
        have = dict(s.execute(select(Response.prompt_id, func.count(Response.id))
                              .where(Response.origin == "model", Response.model_version == version,
                                     Response.prompt_id.in_(list(known.values())))
                              .group_by(Response.prompt_id)).all())
    todo = [r for r in rows if have.get(known[r["prompt_id"]], 0) < sampling.k]
    report.prompts_skipped = len(rows) - len(todo)
    if not todo:
        report.seconds = round(time.time() - t0, 1)
        return report

    # step 2. sample (nothing is written yet)
    resolved = modeling.resolve(model_spec)
    tokenizer = modeling.load_tokenizer(resolved)
    import torch

    dtype = torch.bfloat16 if modeling.use_bf16(sampling.precision) else torch.float32
    model = modeling.load_model(resolved, mode="full", task="causal-lm", dtype=dtype)
    modeling.contiguous_head_input(model)
    answers = sample_answers(model, tokenizer, [r["messages"] for r in todo], sampling, progress)

    # step 3. store, one transaction: until a prompt has K distinct non-empty answers from this version
    settings = {"temperature": sampling.temperature, "top_p": sampling.top_p, "max_new_tokens": sampling.max_new_tokens,
                "seed": sampling.seed, "k": sampling.k,
                "dtype": str(dtype).removeprefix("torch.")}
    with session_scope() as s:
        for row, texts in zip(todo, answers):
            prompt = s.get(Prompt, known[row["prompt_id"]])
            stored = set(s.scalars(select(Response.content_hash).where(
                Response.prompt_id == prompt.id, Response.origin == "model", Response.model_version == version)))
            count = len(stored)
            for i, text in enumerate(texts):
                report.sampled += 1
                if not text:
                    report.empty += 1
                    continue
                h = content_hash({"text": text})
                if h in stored or count >= sampling.k:
                    report.duplicates += h in stored
                    continue
                add_response(s, prompt, text, origin="model", model_version=version, generation={**settings, "index": i})
                stored.add(h)
                count += 1
                report.added += 1
            report.per_prompt[row["prompt_id"]] = count
    report.seconds = round(time.time() - t0, 1)
    return report
