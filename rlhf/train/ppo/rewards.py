"""Score functions for PPO: a reward model (the normal case) or a rubric (for experiments).

A score function maps (prompt messages, response texts, response_ids (B, T), response_mask (B, T))
to a (B,) tensor. The reward model reads the chat-formatted prompt + response exactly as it was
trained on (`rlhf.train.reward.score_texts`), at its last token.
"""

from __future__ import annotations

import contextlib

import torch

from rlhf.train.ppo.rollout import ScoreFn


def reward_model_scorer(reward_model, tokenizer, batch_size: int = 16, max_length: int = 1024) -> ScoreFn:
    """Score with a one-label sequence classifier; a value adapter on it (value_model rm) is switched off."""
    from rlhf.train.reward import score_texts

    def score(messages, texts, response_ids, response_mask) -> torch.Tensor:
        off = reward_model.disable_adapter() if hasattr(reward_model, "disable_adapter") else contextlib.nullcontext()
        with off, torch.no_grad():
            return torch.tensor(score_texts(reward_model, tokenizer, list(messages), list(texts), batch_size, max_length))

    return score


def rubric_scorer(spec: str) -> ScoreFn:
    """Score with a rubric `(prompt text, response) -> float` (a shipped name or path.py:function)."""
    from rlhf.rubrics import load_rubric, prompt_text

    _, fn = load_rubric(spec)

    def score(messages, texts, response_ids, response_mask) -> torch.Tensor:
        return torch.tensor([float(fn(prompt_text(list(m)), t)) for m, t in zip(messages, texts)])

    return score


def load(cfg, tokenizer):
    """(reward model or None, score function) for `cfg.reward_model`: `rubric:NAME`, or an RM that must read
    the policy's tokens exactly as the policy writes them (same tokenizer)."""
    from rlhf.train import modeling
    from rlhf.errors import RlhfError
    from rlhf.train.reward import check_same_tokenizer

    if cfg.reward_model.startswith("rubric:"):
        return None, rubric_scorer(cfg.reward_model[len("rubric:"):])
    resolved = modeling.resolve(cfg.reward_model)
    check_same_tokenizer(modeling.load_tokenizer(resolved), tokenizer, f"the reward model {cfg.reward_model} and the policy {cfg.policy}")
    rm = modeling.load_model(resolved, mode="qlora" if cfg.mode == "qlora" else "full", task="reward", num_labels=1)
    if getattr(rm.config, "num_labels", 1) != 1:
        raise RlhfError(f"{cfg.reward_model}: a reward model has one output (num_labels=1), this one has {rm.config.num_labels}")
    rm.eval()
    return rm, reward_model_scorer(rm, tokenizer, batch_size=cfg.eval_batch_size, max_length=cfg.max_prompt_length + cfg.max_new_tokens + 8)
