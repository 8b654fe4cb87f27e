"""Candidates: sample K answers per prompt from a model and store them as responses to rank.

`rlhf generate --model sft@latest --prompts prompts@latest --k 4` reads a `prompts` registry
snapshot, samples K answers per prompt (left-padded batches, KV cache, nucleus sampling) and
stores each distinct, non-empty answer as a `Response` with origin "model" and the model
version it came from (e.g. `sft@v2`). All rows are written in one transaction at the end, so an
interrupted run stores nothing. A prompt that already has K responses from that model version is
skipped: re-running adds nothing.

Shapes: P prompts per call, K samples each, B = P*K sequences, T_p prompt tokens, T_n new tokens.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from sqlalchemy import func, select

from rlhf.errors import RlhfError

SPLITS = ("train", "heldout", "all")


@dataclass(frozen=True)
class Sampling:
    """How candidates are sampled (stored with every response in `generation`)."""

    k: int = 4  # answers per prompt
    max_new_tokens: int = 64  # longest answer in tokens; cut answers stay unfinished (a rubric may penalise that)
    temperature: float = 0.8  # < 1 keeps answers on topic, > 0 keeps the K answers different
    top_p: float = 0.95  # nucleus sampling (Holtzman et al., 2020)
    batch_size: int = 64  # sequences per generate call (prompts per call = batch_size // k, at least 1); CPU: 64 beats 16 by ~1.4x
    seed: int = 0  # torch seed of batch i is seed + i
    precision: str = "auto"  # sample in bf16 on a GPU or a CPU with native bf16 (~2x faster there); fp32 | bf16 to force

    def check(self) -> None:
        if self.k < 1:
            raise RlhfError(f"--k {self.k}: need at least one answer per prompt (2 or more to rank)")
        if self.max_new_tokens < 1:
            raise RlhfError(f"--max-new-tokens {self.max_new_tokens}: must be at least 1")
        if self.temperature <= 0:
            raise RlhfError(f"--temperature {self.temperature}: must be > 0 (sampling; K greedy answers would be identical)")
        if not 0 < self.top_p <= 1:
            raise RlhfError(f"--top-p {self.top_p}: must be in (0, 1]")
        if self.batch_size < 1:
            raise RlhfError(f"--batch-size {self.batch_size}: must be at least 1")
        from rlhf.train.modeling import PRECISIONS

        if self.precision not in PRECISIONS:
            raise RlhfError(f"--precision {self.precision!r}: expected one of {', '.join(PRECISIONS)}")


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
    the built-in name, or the resolved folder path."""
    from pathlib import Path

    from rlhf.train import modeling

    if spec in (modeling.BUILTIN, "builtin"):
        return modeling.BUILTIN
    if not Path(spec).expanduser().exists() and "@" in spec:
        from rlhf.data.store import session_scope
        from rlhf.data.versions import get_model_version

        with session_scope() as s:
            return get_model_version(s, spec).ref
    return str(modeling.resolve(spec).path)


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


class NucleusTopK:
    """Top-p (nucleus) sampling among the `top_k` most likely tokens: a LogitsProcessor.

    transformers' TopPLogitsWarper sorts the whole vocabulary (49,152 tokens for SmolLM2) at every step:
    ~20% of CPU generation time. The nucleus of a 0.95 mass at temperature <= 1 almost always lies within
    the 256 most likely tokens, so `torch.topk` gives the same distribution (else the nucleus is cut at
    `top_k` tokens).

    >>> import torch
    >>> logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])  # probabilities 0.644, 0.237, 0.087, 0.032
    >>> NucleusTopK(0.6, top_k=3)(None, logits).isinf().tolist()
    [[False, True, True, True]]
    >>> NucleusTopK(0.7, top_k=3)(None, logits).isinf().tolist()
    [[False, False, True, True]]
    >>> NucleusTopK(0.99, top_k=3)(None, logits).isinf().tolist()  # cut at top_k
    [[False, False, False, True]]
    """

    def __init__(self, top_p: float, top_k: int = 256):
        self.top_p, self.top_k = top_p, top_k

    def __call__(self, input_ids, scores):  # scores: (B, V) logits after temperature
        import torch

        k = min(self.top_k, scores.shape[-1])
        top, idx = torch.topk(scores, k, dim=-1)  # (B, k), sorted descending
        probs = (top - torch.logsumexp(scores, dim=-1, keepdim=True)).exp()  # normalized over the whole vocabulary
        drop = probs.cumsum(dim=-1) - probs >= self.top_p  # the mass before this token already reaches top_p
        top = top.masked_fill(drop, float("-inf"))
        return torch.full_like(scores, float("-inf")).scatter(-1, idx, top)


def sample_answers(model, tokenizer, prompts: list[list[dict]], sampling: Sampling, progress: bool = True) -> list[list[str]]:
    """K sampled answers (stripped text) per chat prompt: left-padded batches with the KV cache.

    Each prompt is run through the model once and its KV cache copied K times (prefix sharing), instead of
    transformers' `num_return_sequences`, which repeats the prompt K times before the prefill.
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import DynamicCache, LogitsProcessorList

    tokenizer.padding_side = "left"  # generation appends on the right: pads go left
    per_call = max(1, sampling.batch_size // sampling.k)
    k = sampling.k
    processors = LogitsProcessorList([NucleusTopK(sampling.top_p)] if sampling.top_p < 1 else [])
    out: list[list[str]] = []
    was_training = model.training
    model.eval()
    batches = range(0, len(prompts), per_call)
    for i, start in enumerate(tqdm(batches, desc=f"sampling {k} answers/prompt", unit="batch", disable=not progress)):
        chunk = prompts[start:start + per_call]
        texts = [tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in chunk]
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        ids, mask = enc["input_ids"], enc["attention_mask"]  # (P, T_p)
        with torch.no_grad():
            # prefill all but the last prompt token once per prompt, positions as generate() computes them
            cache = DynamicCache(config=model.config)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=positions[:, :-1],
                  past_key_values=cache, use_cache=True, logits_to_keep=1)  # only the cache is kept: skip (P, T_p, V) logits
            cache.batch_repeat_interleave(k)  # (P, ...) -> (P*K, ...), the K copies of a prompt adjacent
            torch.manual_seed(sampling.seed + i)
            seqs = model.generate(input_ids=ids.repeat_interleave(k, 0), attention_mask=mask.repeat_interleave(k, 0),
                                  past_key_values=cache, do_sample=True, temperature=sampling.temperature, top_p=1.0,
                                  top_k=0, logits_processor=processors, max_new_tokens=sampling.max_new_tokens,
                                  pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                                  use_cache=True)  # (P*K, T_p + T_n)
        answers = tokenizer.batch_decode(seqs[:, ids.shape[1]:], skip_special_tokens=True)
        out.extend([a.strip() for a in answers[j * k:(j + 1) * k]] for j in range(len(chunk)))
    model.train(was_training)
    return out


def generate_candidates(model_spec: str, prompts_ref: str, sampling: Sampling = Sampling(), split: str = "all",
                        progress: bool = True) -> GenerateReport:
    """Sample and store candidates for every prompt of the snapshot still short of K from this model version."""
    import time

    from rlhf.train import modeling
    from rlhf.data.formats import content_hash
    from rlhf.data.store import session_scope
    from rlhf.data.ingest import add_response
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
