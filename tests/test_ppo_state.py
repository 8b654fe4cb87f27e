"""Hand-computed tests for the stateful helpers of rlhf/train/ppo/controllers.py: the KL controllers and
RunningMoments (with its checkpoint round trip). Every expected number is written out with the
arithmetic in a comment; tensors are float64 so the hand-computed decimals compare tightly."""

import math

import pytest
import torch

from rlhf.train.ppo.controllers import AdaptiveKLController, FixedKLController, RunningMoments

D = torch.float64


def t(x, dtype=D):
    return torch.tensor(x, dtype=dtype)


def test_adaptive_kl_controller():
    # init 0.1, target 6, horizon 10000, n_steps 512 -> K = 512/10000 = 0.0512
    ctl = AdaptiveKLController(0.1, target=6.0, horizon=10000)
    # KL too high: err = 9/6 - 1 = 0.5 -> clipped to 0.2; mult = 1 + 0.2*0.0512 = 1.01024
    ctl.update(9.0, 512)
    assert ctl.value == pytest.approx(0.1 * 1.01024, rel=1e-12)  # 0.101024 (increased)
    # KL slightly low: err = 5.4/6 - 1 = -0.1 (within clip); mult = 1 - 0.1*0.0512 = 0.99488
    ctl.update(5.4, 512)
    assert ctl.value == pytest.approx(0.1 * 1.01024 * 0.99488, rel=1e-12)  # 0.1005068
    # KL on target: err = 0 -> unchanged
    before = ctl.value
    ctl.update(6.0, 512)
    assert ctl.value == pytest.approx(before, rel=1e-12)
    # KL far too low: err = 0/6 - 1 = -1 -> clipped to -0.2; mult = 1 - 0.2*0.0512 = 0.98976
    ctl2 = AdaptiveKLController(0.2, target=6.0, horizon=10000)
    ctl2.update(0.0, 512)
    assert ctl2.value == pytest.approx(0.2 * 0.98976, rel=1e-12)  # 0.197952 (decreased)


def test_fixed_kl_controller():
    ctl = FixedKLController(0.05)
    ctl.update(100.0, 512)
    assert ctl.value == 0.05


def test_running_moments_hand_computed():
    rm = RunningMoments()
    # batch [1,2,3]: mean 2, sample std sqrt(((1)+(0)+(1))/2) = 1
    bm, bs = rm.update(t([1.0, 2.0, 3.0]))
    assert (bm, bs) == pytest.approx((2.0, 1.0))
    assert (rm.mean, rm.std, rm.count) == pytest.approx((2.0, 1.0, 3))
    # + [4,5]: all = [1..5], mean 3, sample var (4+1+0+1+4)/4 = 2.5, std 1.5811388
    bm, bs = rm.update(t([4.0, 5.0]))
    assert (bm, bs) == pytest.approx((4.5, math.sqrt(0.5)))  # batch: mean 4.5, std 0.7071068
    assert (rm.mean, rm.std, rm.count) == pytest.approx((3.0, 1.5811388, 5))
    # + [10]: all = [1,2,3,4,5,10], mean 25/6 = 4.1666667,
    #   sample var = (155 - 25^2/6) / 5 = 50.8333333 / 5 = 10.1666667, std = 3.1885211
    bm, bs = rm.update(t([10.0]))
    assert bm == 10.0 and math.isnan(bs)  # single-element batch has no sample std
    assert (rm.mean, rm.std, rm.count) == pytest.approx((4.1666667, 3.1885211, 6))


def test_running_moments_state_dict_round_trip():
    """A checkpointed RunningMoments continues exactly as the one that kept running."""
    g = torch.Generator().manual_seed(2)
    batches = [torch.randn(n, generator=g) for n in (5, 3, 8)]
    kept, saved = RunningMoments(), RunningMoments()
    for b in batches[:2]:
        kept.update(b)
        saved.update(b)
    state = saved.state_dict()
    assert state == {"mean": kept.mean, "var": kept.var, "std": kept.std, "count": 8, "m2": state["m2"]}
    restored = RunningMoments()
    restored.load_state_dict(state)
    kept.update(batches[2])
    restored.update(batches[2])
    assert (restored.mean, restored.var, restored.std, restored.count) == (kept.mean, kept.var, kept.std, kept.count)


def test_running_moments_equals_torch_over_concat():
    g = torch.Generator().manual_seed(1)
    batches = [torch.randn(n, generator=g) * 3 + 1 for n in (7, 1, 16, 3)]
    batches.append(torch.randn(2, 5, generator=g))  # multi-dim batch is flattened
    rm = RunningMoments()
    for b in batches:
        rm.update(b)
    allx = torch.cat([b.flatten() for b in batches]).double()
    assert rm.count == allx.numel()
    assert rm.mean == pytest.approx(allx.mean().item(), rel=1e-6)
    assert rm.std == pytest.approx(allx.std().item(), rel=1e-6)
    assert rm.var == pytest.approx(allx.var(unbiased=False).item(), rel=1e-6)
