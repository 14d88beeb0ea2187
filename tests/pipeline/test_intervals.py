"""The intervals and verdicts of experiments.analysis.intervals, against scipy's t-tests and
the verdict rule's edges."""

from __future__ import annotations

import pytest
from scipy import stats

from experiments.analysis import intervals as iv
from experiments.analysis import verdicts

A = [0.981, 0.978, 0.984, 0.976, 0.983]
B = [0.985, 0.980, 0.986, 0.981, 0.984]


def test_paired_interval_is_scipys_paired_t_interval():
    d = iv.difference(dict(enumerate(A)), dict(enumerate(B)))
    ci = stats.ttest_rel(A, B).confidence_interval(0.95)
    assert d.paired and d.n == (5, 5)
    assert d.mean == pytest.approx(sum(A) / 5 - sum(B) / 5)
    assert (d.low, d.high) == pytest.approx((ci.low, ci.high), rel=1e-12)


def test_unpaired_interval_is_welchs():
    ref = {10 + i: v for i, v in enumerate(B[:4])}  # other seeds: not paired
    d = iv.difference(dict(enumerate(A)), ref)
    ci = stats.ttest_ind(A, B[:4], equal_var=False).confidence_interval(0.95)
    assert not d.paired and d.n == (5, 4)
    assert (d.low, d.high) == pytest.approx((ci.low, ci.high), rel=1e-12)


@pytest.mark.parametrize(("low", "high", "verdict"), [
    (-0.004, 0.006, verdicts.SUPPORTED),        # within ±δ
    (0.02, 0.05, verdicts.SUPPORTED),           # above: non-inferior
    (-0.01, 0.003, verdicts.SUPPORTED),         # the lower end exactly at -δ
    (-0.03, -0.0101, verdicts.NOT_SUPPORTED),   # entirely below -δ
    (-0.014, -0.0002, verdicts.INCONCLUSIVE),   # crosses -δ: n too small to tell
    (-0.05, 0.04, verdicts.INCONCLUSIVE),
])
def test_verdict_rule(low, high, verdict):
    assert iv.Difference((low + high) / 2, low, high, True, (5, 5)).verdict(0.01) == verdict


def test_one_seed_gives_no_interval_and_no_verdict():
    d = iv.difference({0: 0.9}, {0: 0.1})
    assert d.low is None and d.verdict(0.01) == verdicts.INCONCLUSIVE


def test_identical_seeds_give_a_point_interval():
    d = iv.difference({0: 0.5, 1: 0.6}, {0: 0.5, 1: 0.6})
    assert (d.mean, d.low, d.high) == (0.0, 0.0, 0.0) and d.verdict(0.01) == verdicts.SUPPORTED
