"""The paired t interval of `compare` (no scipy: Student's t quantile from its exact CDF for whole degrees of freedom)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def t_cdf_two_sided(t: float, df: int) -> float:
    """P(|T| ≤ t) for Student's t with `df` (a whole number ≥ 1) degrees of freedom.

    The finite series of Abramowitz & Stegun 26.7.3/26.7.4 with θ = atan(t/√df).
    """
    if df < 1:
        raise ValueError("degrees of freedom must be at least 1")
    theta = math.atan(abs(t) / math.sqrt(df))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2 == 1:
        series, term = 0.0, 1.0
        if df > 1:
            series = 1.0
            for k in range(1, (df - 3) // 2 + 1):
                term *= c2 * (2 * k) / (2 * k + 1)
                series += term
        return 2 / math.pi * (theta + s * math.cos(theta) * series)
    series, term = 1.0, 1.0
    for k in range(1, (df - 2) // 2 + 1):
        term *= c2 * (2 * k - 1) / (2 * k)
        series += term
    return s * series


def t_quantile(confidence: float, df: int) -> float:
    """t such that P(|T| ≤ t) = confidence (e.g. 0.95 → 12.706 for df 1, 2.228 for df 10), by bisection."""
    low, high = 0.0, 1.0
    while t_cdf_two_sided(high, df) < confidence:
        high *= 2
    for _ in range(200):
        mid = (low + high) / 2
        if t_cdf_two_sided(mid, df) < confidence:
            low = mid
        else:
            high = mid
    return (low + high) / 2


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    sd: float
    n: int

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def paired_interval(differences: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean of paired differences with its t confidence interval (n − 1 degrees of freedom)."""
    n = len(differences)
    if n < 2:
        raise ValueError("a confidence interval needs at least 2 runs")
    mean = statistics.fmean(differences)
    sd = statistics.stdev(differences)
    half = t_quantile(confidence, n - 1) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, sd, n)
