"""RLOO math (rlhf/train/ppo/advantages.py): sequence rewards and leave-one-out advantages on hand-computed cases."""

from __future__ import annotations

import pytest
import torch

from rlhf.train.ppo.advantages import rloo_advantages, sequence_rewards


def test_rloo_baseline_is_the_mean_of_the_other_samples():
    # one prompt, k = 3: baselines (2+3)/2 = 2.5, (1+3)/2 = 2, (1+2)/2 = 1.5
    adv = rloo_advantages(torch.tensor([1.0, 2.0, 3.0]), k=3)
    assert torch.allclose(adv, torch.tensor([-1.5, 0.0, 1.5]))
    # equivalently k/(k-1) * (R - mean): 1.5 * ([1, 2, 3] - 2)
    assert torch.allclose(adv, 1.5 * (torch.tensor([1.0, 2.0, 3.0]) - 2.0))


def test_rloo_groups_are_consecutive_and_independent():
    rewards = torch.tensor([0.0, 4.0, 10.0, 10.0])  # prompt 0: (0, 4), prompt 1: (10, 10)
    adv = rloo_advantages(rewards, k=2)
    assert torch.allclose(adv, torch.tensor([-4.0, 4.0, 0.0, 0.0]))
    assert torch.allclose(adv.reshape(2, 2).sum(1), torch.zeros(2))  # zero-sum within each prompt


def test_rloo_needs_a_second_sample_and_whole_groups():
    with pytest.raises(ValueError, match="at least 2"):
        rloo_advantages(torch.tensor([1.0, 2.0]), k=1)
    with pytest.raises(ValueError, match="whole number of groups"):
        rloo_advantages(torch.tensor([1.0, 2.0, 3.0]), k=2)


def test_sequence_rewards_subtract_the_summed_kl_of_real_tokens_only():
    scores = torch.tensor([1.0, 2.0])
    logprobs = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -0.5, -9.0]])
    ref = torch.tensor([[-1.5, -2.0, -2.0], [-1.0, -1.0, -1.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    rewards, kl = sequence_rewards(scores, logprobs, ref, mask, kl_coef=0.1)
    # k1 KL = logprob - ref: row 0: 0.5 + 0 - 1 = -0.5; row 1: 0.5 + 0.5 (padding ignored) = 1.0
    assert torch.allclose(kl, torch.tensor([[0.5, 0.0, -1.0], [0.5, 0.5, 0.0]]))
    assert torch.allclose(rewards, torch.tensor([1.0 + 0.05, 2.0 - 0.1]))
