"""The verdict rule of the ``claims`` stage, for one reading of a row and for a claim over
its rows.

A reading compares a configuration with its reference over seeds (``intervals.Difference``:
the difference of means with its 95 % confidence interval [low, high]).  With the margin
``delta`` (params ``claims.delta``):

* **supported**: ``low >= -delta`` (the interval lies within ±delta of zero or above it:
  equivalence, or non-inferiority);
* **not supported**: ``high < -delta`` (worse by more than delta);
* **inconclusive**: otherwise; also when there is no interval (one seed) and whenever the
  reference did not learn (its mean below ``min_baseline``: nothing is shown by matching a
  reference at chance).
"""

from __future__ import annotations

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, MIXED = ("supported", "not supported", "inconclusive",
                                                  "mixed")
VERDICTS = (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE)
# a row's readings: at the paper's settings, and each arm at its tuned learning rate
READINGS = ("paper", "tuned")


def verdict(low: float | None, high: float | None, delta: float,
            reference_mean: float | None = None, min_baseline: float = 0.0) -> str:
    if reference_mean is not None and reference_mean < min_baseline:
        return INCONCLUSIVE
    if low is None or high is None:
        return INCONCLUSIVE
    if low >= -delta:
        return SUPPORTED
    if high < -delta:
        return NOT_SUPPORTED
    return INCONCLUSIVE


def summary_verdict(verdicts: list[str]) -> str:
    """A claim's verdict: supported (not supported) when every judged row is, mixed when its
    judged rows disagree, inconclusive when none could be judged."""
    judged = [v for v in verdicts if v in (SUPPORTED, NOT_SUPPORTED)]
    if not judged:
        return INCONCLUSIVE
    if all(v == SUPPORTED for v in judged):
        return SUPPORTED
    if all(v == NOT_SUPPORTED for v in judged):
        return NOT_SUPPORTED
    return MIXED
