"""The statistics the service reports, as thin wrappers over kept libraries, plus the two small ones we own.

- `krippendorff_alpha_ordinal`: the `krippendorff` package (Krippendorff 2011; ordinal metric).
- `kendall_tau_b`, `mid_ranks`, `pearson`: `scipy.stats` (kendalltau variant b, rankdata "average", pearsonr).
- `normal_cdf`: the standard library's `statistics.NormalDist`; `solve_increasing`: `scipy.optimize.brentq`.
- `wilson_interval` (Wilson 1927) and `cohen_kappa` (Cohen 1960): a few lines each, written out here because
  a tie counts as half a win (a fractional count that scipy's binomial tools refuse), and kappa needs no
  extra dependency.
- `bt_ece`: expected calibration error of Bradley-Terry probabilities (Guo et al. 2017).

Every function returns nan (never raises) where the statistic is undefined, so a report can print "n/a";
`pearson` returns 0.0 for a constant side (no linear relation to report), as the RM metrics expect.
The tests check each against hand-worked cases.
"""

from __future__ import annotations

import math
from collections import defaultdict
from statistics import NormalDist
from typing import Callable, Sequence

Z95 = 1.959963984540054
"""the 0.975 quantile of the standard normal: a two-sided 95% interval"""

_STANDARD_NORMAL = NormalDist()


def normal_cdf(x: float) -> float:
    """Phi(x), the standard normal CDF.

    >>> round(normal_cdf(1.959963984540054), 4)
    0.975
    """
    return _STANDARD_NORMAL.cdf(x)


def solve_increasing(f: Callable[[float], float], target: float, lo: float, hi: float, xtol: float = 1e-9) -> float:
    """The x in [lo, hi] with f(x) = target for an increasing f (Brent's method); `hi` is doubled until it brackets.

    >>> round(solve_increasing(lambda x: x * x, 2.0, 0.0, 1.0), 6)
    1.414214
    """
    from scipy.optimize import brentq

    while f(hi) < target:
        hi *= 2.0
    return brentq(lambda x: f(x) - target, lo, hi, xtol=xtol)


def mid_ranks(order: Sequence[Sequence[int]]) -> dict[int, float]:
    """Index -> mid-rank of a best-first order with ties (1 = best; a tie shares the mean of its places).

    >>> mid_ranks([[0], [2, 1], [3]])
    {0: 1.0, 2: 2.5, 1: 2.5, 3: 4.0}
    """
    from scipy.stats import rankdata

    indices = [i for group in order for i in group]
    groups = [g for g, group in enumerate(order) for _ in group]
    return {i: float(r) for i, r in zip(indices, rankdata(groups, method="average"))}


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b with ties; nan when one side has every value tied (or fewer than 2 values).

    >>> round(kendall_tau_b([1, 2, 3], [1, 2.5, 2.5]), 4)  # (2 - 0) / sqrt(3 * 2)
    0.8165
    """
    import warnings

    from scipy.stats import kendalltau

    if len(x) != len(y):
        raise ValueError("kendall_tau_b: x and y differ in length")
    if len(x) < 2 or len(set(x)) < 2 or len(set(y)) < 2:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(kendalltau(x, y, variant="b").statistic)


def krippendorff_alpha_ordinal(data: Sequence[Sequence[float | None]]) -> float:
    """Ordinal alpha of a coders x units table (None or nan = missing); nan when undefined.

    Units with fewer than two values are not pairable and drop out (Krippendorff 2011).

    >>> round(krippendorff_alpha_ordinal([[1, 2, 3, None], [1, 2.5, 2.5, 4]]), 4)
    0.7727
    """
    import krippendorff
    import numpy as np

    table = np.array([[math.nan if v is None else float(v) for v in row] for row in data], dtype=float) if data else None
    if table is None or table.size == 0:
        return math.nan
    pairable = (~np.isnan(table)).sum(axis=0) >= 2
    values = table[:, pairable]
    if len(np.unique(values[~np.isnan(values)])) < 2:
        return math.nan
    try:
        alpha = float(krippendorff.alpha(reliability_data=table, level_of_measurement="ordinal"))
    except (ValueError, ZeroDivisionError):
        return math.nan
    return alpha


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Pearson correlation; 0.0 when either side is constant or there are fewer than 2 points.

    >>> round(pearson([1, 2, 3], [2, 4, 7]), 3)
    0.993
    """
    from scipy.stats import pearsonr

    if len(xs) < 2 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return 0.0
    return float(pearsonr(xs, ys).statistic)


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval (Wilson 1927; Agresti & Coull 1998) for a proportion `successes / n`:

        centre    = (p + z^2 / (2n)) / (1 + z^2 / n)
        halfwidth = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / (4 n^2))

    It stays inside [0, 1] and behaves at p = 0 or 1 and small n, where the normal (Wald) interval does not.

    >>> [round(x, 4) for x in wilson_interval(8, 10)]
    [0.4902, 0.9433]
    """
    if n <= 0:
        return (math.nan, math.nan)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (max(0.0, centre - half), min(1.0, centre + half))


def cohen_kappa(x: list[str], y: list[str], categories: tuple[str, ...] = ("a", "b", "tie")) -> float:
    """Cohen's kappa of two judges' labels on the same items, `(p_o - p_e) / (1 - p_e)`; nan when p_e is 1.

    >>> round(cohen_kappa(["a", "a", "b", "tie"], ["a", "b", "b", "tie"]), 4)
    0.6364
    """
    if len(x) != len(y) or not x:
        return math.nan
    n = len(x)
    p_o = sum(a == b for a, b in zip(x, y)) / n
    p_e = sum((x.count(c) / n) * (y.count(c) / n) for c in categories)
    return (p_o - p_e) / (1 - p_e) if p_e < 1 else math.nan


def bt_ece(margins: list[float], bins: int = 10) -> float:
    """Expected calibration error of the Bradley-Terry probabilities p = sigmoid(r_chosen - r_rejected).

    Each pair is a binary prediction with confidence max(p, 1-p) in [0.5, 1] and is correct when p > 0.5;
    ECE = sum over equal-width confidence bins of (share of pairs) * |accuracy - mean confidence|
    (Guo et al., 2017). 0 is perfectly calibrated.

    >>> bt_ece([0.0, 0.0])  # p = 0.5 is never "correct" (a tie), at confidence 0.5
    0.5
    """
    if not margins:
        return 0.0
    totals = defaultdict(lambda: [0, 0.0, 0.0])  # bin -> [count, sum confidence, sum correct]
    for m in margins:
        p = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, m))))
        conf = max(p, 1.0 - p)
        b = min(bins - 1, int((conf - 0.5) * 2 * bins))
        t = totals[b]
        t[0] += 1
        t[1] += conf
        t[2] += 1.0 if p > 0.5 else 0.0
    n = len(margins)
    return sum(c / n * abs(s_ok / c - s_conf / c) for c, s_conf, s_ok in totals.values())


def mean(xs) -> float:
    """Mean of the values that are not nan; nan when none is left."""
    vals = [x for x in xs if not math.isnan(x)]
    return sum(vals) / len(vals) if vals else math.nan
