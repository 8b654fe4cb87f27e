"""Rollouts: sample responses, measure them (policy and reference log-probs, values, scores), and
turn the measurements into per-token rewards, advantages and returns.

Implementation details, with their sources (Huang et al. 2024 = "The N+ Implementation Details of
RLHF with PPO", https://arxiv.org/abs/2403.17031):

* Prompts are left-padded so every response starts at the same column; sampling uses the KV cache
  and stops when every row has produced EOS; tokens after the first EOS become padding
  (`tokens.truncate_after_eos`, Huang et al. "truncate after EOS").
* Each training episode is sampled from its own generator (`SeededSampling`, seeds from `ranks.episode_seeds`),
  so its response does not depend on the other rows of its batch nor on the process that samples it.
* Sampling is plain temperature sampling over the whole vocabulary (top_k = 0:
  `rlhf.train.sampling.sampling_kwargs`) so that the log-probs we compute, log softmax(logits /
  temperature), are those of the distribution actually sampled (Huang et al. "temperature before
  log-probs"; a top_p < 1 makes the samples slightly off-policy).
* Log-probs are recomputed with a forward pass (not taken from `generate`), the reference's with the
  LoRA adapter disabled; only the response positions reach the LM head and log-probs are read off
  with `core.token_logprobs` (fused cross-entropy: no separate (B, T, V) log_softmax).
* The RM score is given at the last real token, a response that never ended gets
  `missing_eos_penalty`, every token pays `kl_coef * KL_t` (`advantages.shape_rewards`), advantages are GAE
  and whitened over the real tokens of the batch (`advantages.gae`, `core.masked_whiten`).

Shapes: B episodes, P prompt tokens (left-padded), T response tokens (right-padded), H hidden size.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import torch

from rlhf.train.ppo import advantages as adv
from rlhf.train.ppo import core, tokens
from rlhf.train.ppo.controllers import RunningMoments
from rlhf.train.ppo.models import PolicyValue
from rlhf.train.trunk import trunk_forward
from rlhf.train.sampling import sampling_kwargs

ScoreFn = Callable[[list[list[dict]], list[str], torch.Tensor, torch.Tensor], torch.Tensor]
"""(prompt messages, response texts, response_ids (B, T), response_mask (B, T)) -> (B,) scores."""


@dataclass(frozen=True)
class Rollout:
    """One batch of episodes and everything PPO needs to learn from them."""

    prompt_ids: torch.Tensor  # (B, P) prompt token ids, left-padded with pad_id
    prompt_mask: torch.Tensor  # (B, P) bool, True = real prompt token
    response_ids: torch.Tensor  # (B, T) sampled token ids a_t, pad_id after the first EOS
    response_mask: torch.Tensor  # (B, T) bool, True = real response token (the EOS included)
    has_eos: torch.Tensor  # (B,) bool, the response ended (EOS) within max_new_tokens
    trunk: torch.Tensor  # (B, P+T-1, H) policy states entering the first adapted block (shared with the reference)
    value_trunk: torch.Tensor | None  # (B, P+T-1, H') the value model's trunk states; None for a policy value head
    logprobs: torch.Tensor  # (B, T) log π_old(a_t|s_t) at rollout time, from logits / temperature
    ref_logprobs: torch.Tensor  # (B, T) log π_ref(a_t|s_t), the adapter disabled
    values: torch.Tensor  # (B, T) V_old(s_t)
    entropy: torch.Tensor  # (B, T) entropy of π_old(·|s_t) in nats
    raw_scores: torch.Tensor  # (B,) reward-model score of prompt + response
    scores: torch.Tensor  # (B,) score after normalisation and the missing-EOS penalty
    texts: tuple[str, ...]  # B decoded responses
    messages: tuple  # B prompts as chat messages
    kl: torch.Tensor | None = None  # (B, T) per-token KL estimate, 0 at padding
    non_score_rewards: torch.Tensor | None = None  # (B, T) -kl_coef * KL_t
    rewards: torch.Tensor | None = None  # (B, T) non-score rewards + score at the last real token
    advantages: torch.Tensor | None = None  # (B, T) GAE advantages, whitened over real tokens
    returns: torch.Tensor | None = None  # (B, T) value targets: unwhitened advantages + values

    @property
    def full_mask(self) -> torch.Tensor:
        """(B, P+T) attention mask of prompt + response."""
        return torch.cat([self.prompt_mask, self.response_mask], dim=1)


# --- prompts ----------------------------------------------------------------------------------


def encode_prompts(tokenizer, messages: list[list[dict]], max_prompt_length: int) -> list[list[int]]:
    """Chat-formatted prompt token ids (with the assistant header), cut from the left to `max_prompt_length`."""
    out = []
    for m in messages:
        ids = tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=True)
        ids = list(ids["input_ids"] if not isinstance(ids, list) else ids)
        out.append(ids[-max_prompt_length:])
    return out


def left_pad(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, P) ids left-padded with `pad_id` and the (B, P) bool mask of real tokens."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.bool)
    for i, s in enumerate(seqs):
        ids[i, width - len(s):] = torch.tensor(s, dtype=torch.long)
        mask[i, width - len(s):] = True
    return ids, mask


# --- sampling ---------------------------------------------------------------------------------


class SeededSampling:
    """A LogitsProcessor that samples every row from its own generator (`seeds[i]` for row i) and leaves only the
    token drawn: `generate` then runs greedy over it. Each row's draws depend on its seed and its own logits only,
    not on the other rows of the batch (transformers' sampling draws all rows from the global RNG). The
    distribution is softmax(logits / temperature), cut to its top-p nucleus (transformers' TopPLogitsWarper) when
    top_p < 1: the one `generate` would sample."""

    def __init__(self, seeds: list[int], temperature: float, top_p: float = 1.0):
        self.seeds, self.temperature, self.top_p = list(seeds), temperature, top_p
        self.generators: list[torch.Generator] | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:  # scores: (B, V) logits
        if self.generators is None:
            self.generators = [torch.Generator(device=scores.device).manual_seed(s) for s in self.seeds]
        scores = scores.float() / self.temperature
        if self.top_p < 1.0:
            from transformers import TopPLogitsWarper

            scores = TopPLogitsWarper(self.top_p)(input_ids, scores)
        probs = torch.softmax(scores, dim=-1)
        drawn = torch.cat([torch.multinomial(probs[i], 1, generator=g) for i, g in enumerate(self.generators)])
        return torch.full_like(scores, float("-inf")).scatter_(1, drawn[:, None], 0.0)


def sample(model: PolicyValue, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, max_new_tokens: int, temperature: float,
           top_p: float, eos_id: int, pad_id: int, greedy: bool = False, fast: bool = True,
           seeds: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample one response per prompt with the KV cache (greedy: the argmax instead); keep the trunk states
    generation computed. `fast` samples from the low-precision copy of the policy when there is one. `seeds`:
    row i is sampled from a generator seeded with seeds[i] (`SeededSampling`), else from the global RNG.

    Returns:
        response_ids: (B, T) raw sampled ids (T <= max_new_tokens: stops once every row has ended).
        trunk: (B, P+T-1, H) states entering block `model.start_layer` for every position but the last.
    """
    from transformers import GenerationConfig

    seeded = seeds is not None and not greedy
    gen = GenerationConfig(**sampling_kwargs(temperature, top_p, greedy or seeded), max_new_tokens=max_new_tokens,
                           eos_token_id=eos_id, pad_token_id=pad_id, use_cache=True, return_dict_in_generate=True,
                           output_hidden_states=True)
    device = prompt_ids.device
    generator = model.generator(fast)
    with torch.inference_mode():
        processors = [SeededSampling(seeds, temperature, top_p)] if seeded else None
        out = generator.generate(input_ids=prompt_ids, attention_mask=prompt_mask.long(), generation_config=gen,
                                 logits_processor=processors)
        # hidden_states: one tuple per step (prefill, then one token each) of (layers + 1) tensors (B, n, H)
        trunk = torch.cat([step[model.start_layer] for step in out.hidden_states], dim=1)
    response = out.sequences[:, prompt_ids.shape[1]:]
    # clone: tensors made under inference_mode cannot enter autograd later; the top blocks run in the policy's dtype
    return response.clone().to(device), trunk.to(model.policy.get_input_embeddings().weight.dtype).clone()


# --- measuring --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """The columns a group of episodes needs: left padding all rows share and response tail no row uses are cut."""

    rows: torch.Tensor  # (b,) episode indices
    left: int  # first prompt column with a real token in any row
    T: int  # longest real response among the rows
    start: int  # first kept output position (the last prompt column, relative to `left`)


def window(prompt_mask: torch.Tensor, response_mask: torch.Tensor, rows: torch.Tensor) -> Window:
    P = prompt_mask.shape[1]
    left = int(prompt_mask[rows].any(dim=0).nonzero()[0])
    T = max(int(response_mask[rows].sum(dim=1).max()), 1)
    return Window(rows, left, T, P - 1 - left)


def forward_window(model: PolicyValue, roll_or_parts, w: Window, temperature: float, with_values: bool = True):
    """Log-probs (b, T) of the sampled tokens, values (b, T) and logits (b, T, V) for the episodes in `w`."""
    r = roll_or_parts
    P = r.prompt_mask.shape[1]
    stop = P + w.T - 1
    mask = torch.cat([r.prompt_mask, r.response_mask], dim=1)[w.rows, w.left:stop]
    trunk = r.trunk[w.rows, w.left:stop]
    value_trunk = r.value_trunk[w.rows, w.left:stop] if r.value_trunk is not None else None
    # Huang et al. 2024: divide the logits by the sampling temperature before taking log-probs
    logits, values = model(trunk, mask, w.start, value_trunk=value_trunk, with_values=with_values, temperature=temperature)
    logprobs = core.token_logprobs(logits, r.response_ids[w.rows, :w.T])
    return logprobs, values, logits


@dataclass(frozen=True)
class _Parts:
    prompt_mask: torch.Tensor
    response_mask: torch.Tensor
    response_ids: torch.Tensor
    trunk: torch.Tensor
    value_trunk: torch.Tensor | None


def _pad_right(x: torch.Tensor, T: int, value: float = 0.0) -> torch.Tensor:
    return torch.nn.functional.pad(x, (0, T - x.shape[1]), value=value)


def measure(model: PolicyValue, parts: _Parts, temperature: float, chunk: int, with_values: bool = True) -> dict[str, torch.Tensor]:
    """Policy log-probs, values and entropy, and reference log-probs (adapter disabled), in chunks of `chunk` rows."""
    B, T = parts.response_ids.shape
    out = {k: [] for k in (("logprobs", "values", "entropy", "ref_logprobs") if with_values else ("logprobs", "ref_logprobs"))}
    with torch.no_grad():
        for s in range(0, B, chunk):
            w = window(parts.prompt_mask, parts.response_mask, torch.arange(s, min(s + chunk, B)))
            lp, v, logits = forward_window(model, parts, w, temperature, with_values=with_values)
            out["logprobs"].append(_pad_right(lp, T))
            if with_values:
                out["values"].append(_pad_right(v, T))
                out["entropy"].append(_pad_right(core.entropy_from_logits(logits), T))
            del logits
            with model.policy.disable_adapter():  # the reference: same weights, no adapter (no second copy)
                ref_lp, _, _ = forward_window(model, parts, w, temperature, with_values=False)
            out["ref_logprobs"].append(_pad_right(ref_lp, T))
    return {k: torch.cat(v, dim=0) for k, v in out.items()}


def collect(model: PolicyValue, tokenizer, messages: list[list[dict]], prompt_ids: torch.Tensor, prompt_mask: torch.Tensor,
            score_fn: ScoreFn, cfg, reward_moments: RunningMoments | None, timings: dict[str, float],
            seeds: list[int] | None = None, gather=lambda x: x) -> Rollout:
    """Sample (episode i from seeds[i], see `sample`), measure and score one batch of episodes (everything but the
    advantages). `gather`: every process's scores together, for the running reward statistics."""
    import time

    t0 = time.perf_counter()
    eos_id, pad_id = tokenizer.eos_token_id, tokenizer.pad_token_id
    raw, trunk = sample(model, prompt_ids, prompt_mask, cfg.max_new_tokens, cfg.temperature, cfg.top_p, eos_id, pad_id,
                        seeds=seeds)
    response_ids, response_mask, has_eos = tokens.truncate_after_eos(raw, eos_id, pad_id)
    timings["time/generate"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    value_trunk = None
    if not model.shares_trunk:  # the critic has its own body: run its frozen blocks once on the same tokens
        ids = torch.cat([prompt_ids, response_ids], dim=1)[:, :-1]
        mask = torch.cat([prompt_mask, response_mask], dim=1)[:, :-1]
        with torch.no_grad():
            value_trunk = trunk_forward(model.value_model, ids, mask, model.value_start_layer)
    parts = _Parts(prompt_mask, response_mask, response_ids, trunk, value_trunk)
    measured = measure(model, parts, cfg.temperature, cfg.micro_batch_size)
    timings["time/forward"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    texts = [t.strip() for t in tokenizer.batch_decode(response_ids, skip_special_tokens=True)]
    with torch.no_grad():
        raw_scores = score_fn(messages, texts, response_ids, response_mask).detach().float().cpu().reshape(-1)
    timings["time/score"] = time.perf_counter() - t0
    scores = raw_scores
    every = gather(raw_scores)  # the global batch's scores: the statistics are the same on every process
    if reward_moments is not None and torch.isfinite(every).all():
        # reward normalisation by running statistics (Ziegler et al. 2019 normalise the RM; TRL RunningMoments)
        reward_moments.update(every)
        std = reward_moments.std if reward_moments.count > 1 and reward_moments.std > 0 else 1.0
        scores = (raw_scores - reward_moments.mean) / std
    scores = adv.apply_missing_eos_penalty(scores, has_eos, cfg.missing_eos_penalty)
    return Rollout(prompt_ids=prompt_ids, prompt_mask=prompt_mask, response_ids=response_ids, response_mask=response_mask,
                   has_eos=has_eos, trunk=trunk, value_trunk=value_trunk, texts=tuple(texts), messages=tuple(messages),
                   raw_scores=raw_scores, scores=scores.to(measured["logprobs"].device), **measured)


def whiten_batch(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`core.masked_whiten` over the batch's real tokens; with fewer than 2 of them (no variance) `x` unchanged."""
    return core.masked_whiten(x, mask) if int(mask.sum()) > 1 else x


def with_advantages(roll: Rollout, kl_coef: float, cfg, whiten=whiten_batch) -> Rollout:
    """Per-token rewards (KL penalty + score at the last token), advantages and returns.

    ppo: GAE advantages, whitened over the real tokens of the batch (`whiten`: over every process's batch under
    `accelerate launch`), and TD(lambda) returns for the critic. rloo: the whole response is one action
    (Ahmadian et al. 2024): its reward is the score minus the summed KL, its advantage the leave-one-out
    difference to the other samples of the same prompt, given to every token; no critic, no returns.
    """
    mask = roll.response_mask
    rewards, non_score, kl = adv.shape_rewards(roll.scores, roll.logprobs, roll.ref_logprobs, mask, kl_coef, cfg.kl_estimator)
    if cfg.algorithm == "rloo":
        seq_rewards, _ = adv.sequence_rewards(roll.scores.to(roll.logprobs.device), roll.logprobs, roll.ref_logprobs, mask,
                                               kl_coef, cfg.kl_estimator)
        advantages = adv.rloo_advantages(seq_rewards, cfg.rloo_k)[:, None] * mask.to(seq_rewards.dtype)
        return replace(roll, kl=kl, non_score_rewards=non_score, rewards=rewards, advantages=advantages,
                       returns=torch.zeros_like(advantages))
    advantages, returns = adv.gae(rewards, roll.values, mask, cfg.gamma, cfg.lam)
    advantages = whiten(advantages, mask)  # Huang et al. 2024: whiten advantages per batch
    return replace(roll, kl=kl, non_score_rewards=non_score, rewards=rewards, advantages=advantages, returns=returns)
