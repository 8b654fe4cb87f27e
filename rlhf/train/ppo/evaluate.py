"""Held-out evaluation of a PPO policy against its starting (SFT) policy.

For each policy on the same held-out prompts: mean RM reward, mean rubric (gold) score, mean length
in tokens, the share of answers that ended (EOS) within the budget; for the trained policy also the KL to the SFT policy (sequence level: the mean over prompts
of sum_t log π(a_t|s_t) - log π_sft(a_t|s_t) on the PPO policy's own samples, logits / temperature)
and the win rate of PPO over SFT judged by the rubric (ties count half). The SFT policy is the same
model with the adapter disabled. Randomness is drawn from a forked, fixed-seed RNG, so evaluating
never changes the training run's random stream (and a resumed run stays exact).

Shapes: N held-out prompts, b prompts per batch, T response tokens.
"""

from __future__ import annotations

import contextlib

import torch

from rlhf.train.ppo import rollout, tokens
from rlhf.train.ppo.models import PolicyValue


SUMMARY_ROWS = (("RM reward", "reward", "{:+.3f}"), ("rubric score", "rubric", "{:.3f}"),
                ("KL to SFT (nats/answer)", "kl", "{:.2f}"), ("length (tokens)", "length", "{:.1f}"),
                ("EOS rate", "eos", "{:.2f}"))
"""(label, summary key, format) of the before/after table every policy stage prints."""


def _batches(n: int, size: int):
    for s in range(0, n, size):
        yield slice(s, min(s + size, n))


def answer(model: PolicyValue, tokenizer, messages: list[list[dict]], cfg, use_adapter: bool, greedy: bool,
           seed: int) -> dict:
    """Answers to `messages` (greedy or sampled at cfg.temperature) and, for sampled answers, their sequence KL."""
    encoded = rollout.encode_prompts(tokenizer, messages, cfg.max_prompt_length)
    texts, lengths, kls, ended = [], [], [], []
    off = contextlib.nullcontext() if use_adapter else model.adapter_disabled()
    with torch.random.fork_rng(devices=[]), off:
        torch.manual_seed(seed)
        for sl in _batches(len(messages), cfg.eval_batch_size):
            ids, mask = rollout.left_pad(encoded[sl], tokenizer.pad_token_id)
            ids, mask = ids.to(model.policy.device), mask.to(model.policy.device)
            # the float32 policy itself (not the bf16 sampling copy): the model that gets registered
            raw, trunk = rollout.sample(model, ids, mask, cfg.max_new_tokens, cfg.temperature, cfg.top_p,
                                        tokenizer.eos_token_id, tokenizer.pad_token_id, greedy=greedy, fast=False)
            resp, resp_mask, has_eos = tokens.truncate_after_eos(raw, tokenizer.eos_token_id, tokenizer.pad_token_id)
            texts += [t.strip() for t in tokenizer.batch_decode(resp, skip_special_tokens=True)]
            lengths += resp_mask.sum(1).tolist()
            ended += has_eos.tolist()
            if not greedy and use_adapter:
                parts = rollout._Parts(mask, resp_mask, resp, trunk, None)
                m = rollout.measure(model, parts, cfg.temperature, cfg.eval_batch_size, with_values=False)
                kls += ((m["logprobs"] - m["ref_logprobs"]) * resp_mask).sum(1).tolist()
    return {"texts": texts, "lengths": lengths, "kl": kls, "ended": ended}


def evaluate(model: PolicyValue, tokenizer, messages: list[list[dict]], score_fn, rubric_fn, cfg, use_adapter: bool) -> dict:
    """Answers of one policy (the PPO policy, or the SFT one with use_adapter=False) with their RM and rubric scores."""
    from rlhf.rubrics import prompt_text

    out = answer(model, tokenizer, messages, cfg, use_adapter, cfg.eval_greedy, cfg.seed + 1)
    if use_adapter and cfg.eval_greedy:  # the KL needs the policy's own samples
        out["kl"] = answer(model, tokenizer, messages, cfg, True, False, cfg.seed + 2)["kl"]
    with torch.no_grad():
        rewards = score_fn(messages, out["texts"], None, None).float().tolist()
    rubric = [float(rubric_fn(prompt_text(m), t)) for m, t in zip(messages, out["texts"])]
    n = len(messages)
    summary = {"reward": sum(rewards) / n, "rubric": sum(rubric) / n, "length": sum(out["lengths"]) / n,
               "kl": sum(out["kl"]) / n if out["kl"] else 0.0,
               "eos": sum(out["ended"]) / n}  # share of answers that ended (EOS) within max_new_tokens
    return {"summary": summary, "texts": out["texts"], "rewards": rewards, "rubric": rubric}


def win_rate(ppo_rubric: list[float], sft_rubric: list[float]) -> float:
    """Share of prompts where PPO's answer scores higher on the rubric than SFT's; ties count half.

    >>> win_rate([1.0, 0.5, 2.0], [0.0, 0.5, 3.0])
    0.5
    """
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in zip(ppo_rubric, sft_rubric))
    return wins / len(ppo_rubric) if ppo_rubric else 0.0


def win_interval(policy_rubric: list[float], sft_rubric: list[float]) -> list[float]:
    """The 95% Wilson interval of `win_rate` (ties counted half, as in the A/B reports).

    >>> [round(x, 3) for x in win_interval([1.0] * 8 + [0.0] * 2, [0.5] * 10)]
    [0.49, 0.943]
    """
    from rlhf.stats import wilson_interval

    n = len(policy_rubric)
    return list(wilson_interval(win_rate(policy_rubric, sft_rubric) * n, n))
