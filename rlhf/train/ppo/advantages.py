"""From scores to advantages: per-token rewards (KL penalty + score at the last token), GAE for PPO, and the
whole-sequence reward and leave-one-out advantages of RLOO. Pure functions over tensors: like ``core``, this
module imports only torch, the standard library and its pure-math siblings. Shapes as in ``core``:
B episodes, T response tokens, masks (B, T) with 1 = real token (right-padded).
"""

from __future__ import annotations

from typing import Tuple

import torch

from rlhf.train.ppo.core import _as_mask, kl_per_token

__all__ = ["shape_rewards", "apply_missing_eos_penalty", "gae", "sequence_rewards", "rloo_advantages"]


# ---------------------------------------------------------------------------
# Rewards
# ---------------------------------------------------------------------------


def shape_rewards(
    scores: torch.Tensor,
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    mask: torch.Tensor,
    kl_coef: float,
    estimator: str = "k1",
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token RLHF reward: KL penalty on every real token + score on the last one.

        r_t = -kl_coef * KL_t                (t < last)
        r_last = -kl_coef * KL_last + score

    The sequence-level reward-model score is a sparse reward given at the last real
    token (the EOS token when there is one), and the KL penalty to the reference
    policy is a dense per-token reward (Ziegler et al. 2019, Section 2; lm-human-preferences
    ``train_policy.py``; Huang et al. 2024, "Reward: per-token KL penalty").

    Args:
        scores: (B,) reward-model score per episode.
        logprobs: (B, T) log pi(y_t) under the rollout policy.
        ref_logprobs: (B, T) log pi_ref(y_t) under the reference (SFT) policy.
        mask: (B, T) float or bool, 1 = real token, right-padded.
        kl_coef: beta, the KL penalty coefficient (float, e.g. ``kl_ctl.value``).
        estimator: "k1" or "k3", see ``kl_per_token``.

    Returns:
        rewards: (B, T) total per-token reward; 0 at padded positions.
        non_score_reward: (B, T) ``-kl_coef * kl``; 0 at padded positions.
        kl: (B, T) per-token KL estimate; 0 at padded positions.
    """
    m = _as_mask(mask, logprobs)
    kl = kl_per_token(logprobs, ref_logprobs, estimator) * m
    non_score_reward = -kl_coef * kl
    rewards = non_score_reward.clone()
    # Index of the last real token of each row: mask.sum(1) - 1 (right padding).
    lengths = m.sum(dim=1).long()  # (B,)
    last_idx = (lengths - 1).clamp(min=0)  # (B,)
    # A row with no real tokens gets no score (it has nowhere to go).
    score = scores.to(rewards.dtype) * (lengths > 0).to(rewards.dtype)
    rewards.scatter_add_(1, last_idx.unsqueeze(1), score.unsqueeze(1))
    return rewards, non_score_reward, kl


def apply_missing_eos_penalty(
    scores: torch.Tensor, has_eos: torch.Tensor, penalty: float
) -> torch.Tensor:
    """Penalize episodes whose response never produced EOS (was truncated).

    The "EOS trick" of Huang et al. 2024 / lm-human-preferences discourages truncated,
    rambling completions. lm-human-preferences and the N+ reference code *replace* the
    score by ``penalty_reward_value``; here, as in TRL's ``missing_eos_penalty``, the
    penalty is *added* so the reward model's signal is kept. ``penalty`` is negative
    (e.g. -1.0).

    Args:
        scores: (B,) reward-model scores.
        has_eos: (B,) bool, True where the response contains an EOS token.
        penalty: value added to the score of episodes without EOS.

    Returns:
        (B,) new scores (the input is not modified).
    """
    return torch.where(has_eos.bool(), scores, scores + penalty)


# ---------------------------------------------------------------------------
# Advantages
# ---------------------------------------------------------------------------


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    gamma: float,
    lam: float,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Generalized Advantage Estimation (Schulman et al. 2016, https://arxiv.org/abs/1506.02438).

    The loop runs backwards over the T response tokens (CleanRL / lm-human-preferences
    ``train_policy.py`` / TRL ``PPOTrainer``), with a running accumulator
    ``lastgaelam`` (B,):

        next_value_t = values[:, t+1] * mask[:, t+1]      (0 for t = T-1)
        delta_t      = rewards[:, t] + gamma * next_value_t - values[:, t]
        A_t          = (delta_t + gamma * lam * A_{t+1}) * mask[:, t]

    Because ``mask[:, t+1]`` is 0 after the last real token, the bootstrap value
    after the end of each episode is 0 (the episode terminates there), and because
    ``A_t`` is multiplied by ``mask[:, t]`` padded positions have advantage 0 and
    do not leak into earlier tokens. Rewards and values at padded positions are ignored.

    Returns are the value-function targets ``R_t = A_t + V_t`` (TD(lambda) returns).

    Args:
        rewards: (B, T) per-token rewards (e.g. from ``shape_rewards``).
        values: (B, T) value estimates V(s_t) from the rollout critic.
        mask: (B, T) float or bool, 1 = real token.
        gamma: discount factor (Huang et al. 2024 use 1.0).
        lam: GAE lambda (Huang et al. 2024 use 0.95).

    Returns:
        advantages: (B, T), 0 at padded positions (not whitened; see ``masked_whiten``).
        returns: (B, T), ``advantages + values``; 0 at padded positions.
    """
    m = _as_mask(mask, rewards)
    rewards = rewards * m
    values = values.to(rewards.dtype) * m  # zero values at padding => V(after end) = 0
    T = rewards.shape[1]
    advantages_reversed = []
    lastgaelam = torch.zeros_like(rewards[:, 0])  # (B,)
    for t in reversed(range(T)):
        next_values = values[:, t + 1] if t < T - 1 else torch.zeros_like(values[:, 0])
        delta = rewards[:, t] + gamma * next_values - values[:, t]
        lastgaelam = (delta + gamma * lam * lastgaelam) * m[:, t]
        advantages_reversed.append(lastgaelam)
    advantages = torch.stack(advantages_reversed[::-1], dim=1)  # (B, T)
    returns = advantages + values
    return advantages, returns


def sequence_rewards(
    scores: torch.Tensor,
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    mask: torch.Tensor,
    kl_coef: float,
    estimator: str = "k1",
) -> Tuple[torch.Tensor, torch.Tensor]:
    """The whole episode's reward of a critic-free method: the score minus the KL penalty summed over the
    response, ``R = score - kl_coef * sum_t KL_t`` (Ahmadian et al. 2024, "Back to Basics: Revisiting
    REINFORCE-Style Optimization for Learning from Human Feedback in LLMs", https://arxiv.org/abs/2402.14740,
    sec. 3: the sequence is one action; TRL's RLOOTrainer computes the same ``rlhf_reward``).

    Args:
        scores: (B,) reward-model scores (after the missing-EOS penalty).
        logprobs, ref_logprobs: (B, T) log-probs of the sampled tokens under the policy and the reference.
        mask: (B, T) float or bool, 1 = real token.
        kl_coef: beta.
        estimator: "k1" or "k3" (see ``kl_per_token``).

    Returns:
        rewards: (B,) sequence rewards.
        kl: (B, T) per-token KL estimate, 0 at padded positions.
    """
    m = _as_mask(mask, logprobs)
    kl = kl_per_token(logprobs, ref_logprobs, estimator) * m
    return scores.to(logprobs.dtype) - kl_coef * kl.sum(dim=1), kl


def rloo_advantages(rewards: torch.Tensor, k: int) -> torch.Tensor:
    """REINFORCE Leave-One-Out advantages (Kool et al. 2019, "Buy 4 REINFORCE Samples, Get a Baseline for Free!";
    Ahmadian et al. 2024, eq. 6): each of the k samples of a prompt is baselined by the mean reward of the other
    k - 1 samples of the same prompt,

        A_i = R_i - 1/(k-1) * sum_{j != i} R_j  =  k/(k-1) * (R_i - mean_j R_j)

    so no value network is needed and the baseline is unbiased (it does not depend on sample i).

    Args:
        rewards: (B,) sequence rewards, B = P * k, the k samples of each prompt consecutive
            (rows 0..k-1 are prompt 0, rows k..2k-1 prompt 1, ...).
        k: samples per prompt, at least 2.

    Returns:
        (B,) advantages; they sum to 0 within each prompt's group.
    """
    if k < 2:
        raise ValueError(f"rloo_advantages: k must be at least 2 (a leave-one-out baseline needs another sample), got {k}")
    if rewards.shape[0] % k:
        raise ValueError(f"rloo_advantages: {rewards.shape[0]} rewards are not a whole number of groups of {k}")
    grouped = rewards.reshape(-1, k)  # (P, k)
    baseline = (grouped.sum(dim=1, keepdim=True) - grouped) / (k - 1)  # (P, k): mean of the others
    return (grouped - baseline).reshape(-1)
