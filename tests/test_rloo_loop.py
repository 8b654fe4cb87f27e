"""RLOO in our RL loop (algorithm: rloo): k samples per prompt, leave-one-out baseline, no critic.

The same toy policy and reward as tests/test_ppo_loop.py.
"""

from __future__ import annotations

import pytest
import torch

from rlhf.errors import RlhfError
from rlhf.train.ppo import core
from test_ppo_loop import (PROMPTS, check_reward_rose, config, one_thread, toy,  # noqa: F401  (fixtures)
                           toy_rewards, trainer)


def test_each_prompt_is_sampled_k_times_in_a_row(toy, tmp_path):
    tr = trainer(toy, tmp_path / "run", algorithm="rloo", rloo_k=4)
    rows = tr.prompt_indices(0)
    assert len(rows) == 8 and rows[:4] == [rows[0]] * 4 and rows[4:] == [rows[4]] * 4 and rows[0] != rows[4]
    assert tr.prompt_indices(1)[0] not in (rows[0], rows[4])  # the next update takes the next prompts


def test_rloo_advantages_are_leave_one_out_per_prompt_and_no_critic_trains(toy, tmp_path):
    tr = trainer(toy, tmp_path / "run", algorithm="rloo", rloo_k=4, kl_coef=0.0)
    head_before = tr.unwrapped.value_head.weight.detach().clone()
    first = tr.train(stop_after=1)[0]
    assert first["loss/value"] == 0.0 and torch.equal(tr.unwrapped.value_head.weight, head_before)
    assert first["policy/first_ratio_dev"] < 1e-5


def test_rloo_raises_the_toy_reward(toy, tmp_path):
    check_reward_rose(toy_rewards(toy, tmp_path / "run", algorithm="rloo", rloo_k=4))


def test_rloo_settings_that_cannot_work_fail_early():
    with pytest.raises(RlhfError, match="a multiple of it"):
        config(algorithm="rloo", rloo_k=3).check()
    with pytest.raises(RlhfError, match="no critic"):
        config(algorithm="rloo", value_model="rm", reward_model="rm@v1").check()


def test_whiten_with_given_statistics_equals_masked_whiten():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    m = mask.float()
    mean = core.masked_mean(x, m)
    var = core.masked_var(x, m, unbiased=True)
    assert torch.equal(core.whiten_with(x, mask, mean, var), core.masked_whiten(x, mask))
    # the statistics of two halves together (what a 2-process run reduces) give the whole batch's whitening
    sums = [((x[i] * m[i]).sum(), (x[i] * x[i] * m[i]).sum(), m[i].sum()) for i in range(2)]
    total, total_sq, n = (sum(s[j] for s in sums) for j in range(3))
    g_mean = total / n
    g_var = (total_sq / n - g_mean * g_mean) * n / (n - 1)
    assert torch.allclose(core.whiten_with(x, mask, g_mean, g_var), core.masked_whiten(x, mask), atol=1e-6)
