"""State PPO carries from one update to the next: the KL coefficient controllers and the running reward
statistics. Like ``core``, this module imports only torch and the standard library.
"""

from __future__ import annotations

import math
from typing import Tuple

import torch

__all__ = ["AdaptiveKLController", "FixedKLController", "RunningMoments"]


# ---------------------------------------------------------------------------
# KL coefficient controllers and running reward statistics
# ---------------------------------------------------------------------------


class AdaptiveKLController:
    """Adaptive KL coefficient (Ziegler et al. 2019, Section 2.2,
    https://arxiv.org/abs/1909.08593; lm-human-preferences ``AdaptiveKLController``).

        e_t   = clip(KL_t / KL_target - 1, -0.2, 0.2)
        beta <- beta * (1 + K_beta * e_t),  K_beta = n_steps / horizon

    Attributes:
        value: current KL coefficient beta.
    """

    def __init__(self, init_kl_coef: float, target: float, horizon: float) -> None:
        if target <= 0 or horizon <= 0:
            raise ValueError("target and horizon must be > 0")
        self.value = float(init_kl_coef)
        self.target = float(target)
        self.horizon = float(horizon)

    def update(self, current_kl: float, n_steps: int) -> None:
        """Update ``value`` given the measured KL and the number of episodes
        (``n_steps``, the batch size in lm-human-preferences) since the last update."""
        proportional_error = min(max(float(current_kl) / self.target - 1.0, -0.2), 0.2)
        mult = 1.0 + proportional_error * n_steps / self.horizon
        self.value *= mult


class FixedKLController:
    """Constant KL coefficient with the ``AdaptiveKLController`` interface."""

    def __init__(self, kl_coef: float) -> None:
        self.value = float(kl_coef)

    def update(self, current_kl: float, n_steps: int) -> None:
        """No-op."""
        return None


class RunningMoments:
    """Running mean and standard deviation over all elements seen so far
    (for reward normalization, e.g. TRL ``RunningMoments``).

    Batches are merged with Chan et al.'s parallel form of Welford's algorithm
    (https://en.wikipedia.org/wiki/Algorithms_for_calculating_variance#Parallel_algorithm),
    accumulated in float64 on the host.

    Attributes:
        mean: running mean (float).
        var: running population (biased) variance (float).
        std: running sample (unbiased) standard deviation (float), matching
            ``torch.std`` over the concatenation of all batches; NaN while count < 2.
        count: number of elements seen (int).
    """

    def __init__(self) -> None:
        self.mean = 0.0
        self.var = 0.0
        self.std = float("nan")
        self.count = 0
        self._m2 = 0.0  # sum of squared deviations from the running mean

    def update(self, x: torch.Tensor) -> Tuple[float, float]:
        """Fold a batch into the running statistics.

        Args:
            x: tensor of any shape (e.g. (B,) scores); all elements are used.

        Returns:
            (batch mean, batch sample std) of ``x``; the std is NaN if ``x`` has one element.
        """
        xs = x.detach().to(torch.float64).flatten()
        n_b = xs.numel()
        if n_b == 0:
            raise ValueError("RunningMoments.update got an empty tensor")
        mean_b = xs.mean().item()
        m2_b = ((xs - mean_b) ** 2).sum().item()

        # Chan et al. parallel combine of (count, mean, M2).
        n_a = self.count
        n = n_a + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * n_b / n
        self._m2 = self._m2 + m2_b + delta * delta * n_a * n_b / n
        self.count = n
        self.var = self._m2 / n
        self.std = math.sqrt(self._m2 / (n - 1)) if n > 1 else float("nan")

        batch_std = math.sqrt(m2_b / (n_b - 1)) if n_b > 1 else float("nan")
        return mean_b, batch_std

    def state_dict(self) -> dict:
        """The running statistics as plain floats (JSON-able), for checkpoints; ``m2`` is the sum of squared
        deviations from the mean, which the next update needs."""
        return {"mean": self.mean, "var": self.var, "std": self.std, "count": self.count, "m2": self._m2}

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state_dict()`` output."""
        self.mean, self.var, self.std = state["mean"], state["var"], state["std"]
        self.count, self._m2 = state["count"], state["m2"]
