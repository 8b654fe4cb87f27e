"""Answers from a causal LM to chat prompts: the one home of every generation loop but PPO's rollout.

- `greedy_answers`: one greedy answer per prompt (SFT before/after samples, A/B sessions at temperature 0).
- `sample_answers`: K sampled answers per prompt with a prefix-shared KV cache (`rlhf generate` candidates).
- `answers`: one answer per prompt from a model reference, greedy or seeded sampling (A/B review sessions).
- `sampling_kwargs`: the `generate` settings of plain temperature sampling, shared with `ppo.rollout.sample`
  (which needs the hidden states generation computes, so it calls `generate` itself).

Prompts are left-padded (generation appends on the right); answers are decoded without special tokens
and stripped. Shapes: P prompts per call, K samples each, T_p prompt tokens, T_n new tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlhf.errors import RlhfError
from rlhf.train.modeling import PRECISIONS, eval_mode


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
        if self.precision not in PRECISIONS:
            raise RlhfError(f"--precision {self.precision!r}: expected one of {', '.join(PRECISIONS)}")


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


def sampling_kwargs(temperature: float, top_p: float = 1.0, greedy: bool = False) -> dict:
    """`generate` settings: plain temperature sampling over the whole vocabulary (top_k=0 switches off
    transformers' default top-50, so log softmax(logits / temperature) is the distribution sampled), or greedy.

    >>> sampling_kwargs(0.7)
    {'do_sample': True, 'temperature': 0.7, 'top_p': 1.0, 'top_k': 0}
    """
    return dict(do_sample=False) if greedy else dict(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)


def encode_chat(tokenizer, prompts: list[list[dict]], device):
    """The chat-formatted prompts as one left-padded batch (input_ids, attention_mask: (P, T_p)) on `device`."""
    tokenizer.padding_side = "left"  # generation appends on the right: pads go left
    texts = [tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in prompts]
    return tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)


def decode_answers(tokenizer, seqs, prompt_width: int) -> list[str]:
    """The new tokens of each generated row (after the `prompt_width` prompt columns) as stripped text."""
    return [a.strip() for a in tokenizer.batch_decode(seqs[:, prompt_width:], skip_special_tokens=True)]


def _generate(model, tokenizer, prompts: list[list[dict]], max_new_tokens: int, **how) -> list[str]:
    """One answer per prompt, one generate call over the left-padded batch."""
    import torch

    enc = encode_chat(tokenizer, prompts, model.device)
    with eval_mode(model), torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                             eos_token_id=tokenizer.eos_token_id, **how)
    return decode_answers(tokenizer, out, enc["input_ids"].shape[1])


def greedy_answers(model, tokenizer, prompts: list[list[dict]], max_new_tokens: int = 48) -> list[str]:
    """Greedy answers to chat prompts (one left-padded batch), for before/after tables."""
    return _generate(model, tokenizer, prompts, max_new_tokens, do_sample=False)


def sample_answers(model, tokenizer, prompts: list[list[dict]], sampling: Sampling, progress: bool = True) -> list[list[str]]:
    """K sampled answers (stripped text) per chat prompt: left-padded batches with the KV cache.

    Each prompt is run through the model once and its KV cache copied K times (prefix sharing), instead of
    transformers' `num_return_sequences`, which repeats the prompt K times before the prefill.
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import DynamicCache, LogitsProcessorList

    per_call = max(1, sampling.batch_size // sampling.k)
    k = sampling.k
    processors = LogitsProcessorList([NucleusTopK(sampling.top_p)] if sampling.top_p < 1 else [])
    out: list[list[str]] = []
    batches = range(0, len(prompts), per_call)
    with eval_mode(model):
        for i, start in enumerate(tqdm(batches, desc=f"sampling {k} answers/prompt", unit="batch", disable=not progress)):
            chunk = prompts[start:start + per_call]
            enc = encode_chat(tokenizer, chunk, model.device)
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
                                      past_key_values=cache, **sampling_kwargs(sampling.temperature),
                                      logits_processor=processors, max_new_tokens=sampling.max_new_tokens,
                                      pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                                      use_cache=True)  # (P*K, T_p + T_n)
            answers = decode_answers(tokenizer, seqs, ids.shape[1])
            out.extend(answers[j * k:(j + 1) * k] for j in range(len(chunk)))
    return out


def answers(model_spec: str, prompts: list[list[dict]], max_new_tokens: int, temperature: float, top_p: float,
            seed: int, batch_size: int, progress: bool = True) -> list[str]:
    """One answer per chat prompt from `model_spec` (built-in, folder or NAME@vN), in batches of `batch_size`:
    greedy when `temperature` is 0, else sampled with the torch seed `seed + index of the batch's first prompt`
    (the same settings give the same answers)."""
    import torch
    from tqdm.auto import tqdm

    from rlhf.train import modeling

    resolved = modeling.resolve(model_spec)
    tok = modeling.load_tokenizer(resolved)
    model = modeling.load_model(resolved).to(modeling.device())
    out: list[str] = []
    for start in tqdm(range(0, len(prompts), batch_size), desc=f"answers from {model_spec}", disable=not progress, unit="batch"):
        batch = prompts[start:start + batch_size]
        if temperature <= 0:
            out.extend(greedy_answers(model, tok, batch, max_new_tokens))
            continue
        torch.manual_seed(seed + start)
        out.extend(_generate(model, tok, batch, max_new_tokens, do_sample=True, temperature=temperature, top_p=top_p))
    del model
    return out
