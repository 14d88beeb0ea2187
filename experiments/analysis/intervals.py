"""Differences of means with their 95 % confidence intervals.

A rule is compared with its reference over seeds.  Where both ran the same seeds, which give
them the same initialisation and data order, the difference is paired by seed: its interval is
``mean(d) ± t(0.975, n - 1) · sd(d) / √n`` over the per-seed differences ``d``.  Otherwise
Welch's interval: ``Δ ± t(0.975, ν) · √(s₁²/n₁ + s₂²/n₂)`` with the Welch–Satterthwaite ``ν``.
With fewer than two seeds on a side there is no interval (``low``/``high`` None).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from scipy import stats

from experiments.analysis import verdicts

LEVEL = 0.95


@dataclass(frozen=True)
class Difference:
    """``config − reference``: the difference of means and its interval (None: no interval)."""

    mean: float
    low: float | None
    high: float | None
    paired: bool
    n: tuple[int, int]  # seeds of the configuration, of the reference

    def verdict(self, delta: float) -> str:
        return verdicts.verdict(self.low, self.high, delta)


def _t(df: float) -> float:
    return float(stats.t.ppf(0.5 + LEVEL / 2, df))


def paired(config: list[float], reference: list[float]) -> Difference:
    """The paired difference of two equally long lists (same seeds, same order)."""
    d = [c - r for c, r in zip(config, reference, strict=True)]
    mean, n = statistics.fmean(d), len(d)
    if n < 2:
        return Difference(mean, None, None, True, (n, n))
    half = _t(n - 1) * statistics.stdev(d) / math.sqrt(n)
    return Difference(mean, mean - half, mean + half, True, (n, n))


def welch(config: list[float], reference: list[float]) -> Difference:
    """Welch's difference of two independent samples."""
    n1, n2 = len(config), len(reference)
    mean = statistics.fmean(config) - statistics.fmean(reference)
    if n1 < 2 or n2 < 2:
        return Difference(mean, None, None, False, (n1, n2))
    v1, v2 = statistics.variance(config) / n1, statistics.variance(reference) / n2
    if v1 + v2 == 0.0:
        return Difference(mean, mean, mean, False, (n1, n2))
    df = (v1 + v2) ** 2 / (v1**2 / (n1 - 1) + v2**2 / (n2 - 1))
    half = _t(df) * math.sqrt(v1 + v2)
    return Difference(mean, mean - half, mean + half, False, (n1, n2))


def difference(config: dict[int, float], reference: dict[int, float]) -> Difference:
    """``config − reference`` from per-seed values: paired when both ran the same seeds."""
    if set(config) == set(reference):
        seeds = sorted(config)
        return paired([config[s] for s in seeds], [reference[s] for s in seeds])
    return welch(list(config.values()), list(reference.values()))
