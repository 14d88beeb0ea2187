"""The verdict rules of the ``claims`` stage: one row against its reference, a claim over its
rows, and which candidate is "our control"."""

from __future__ import annotations

from experiments.config import CONTROL_RULES, ParamsError

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, MIXED = ("supported", "not supported", "inconclusive",
                                                  "mixed")


def verdict(diff: float, spread: float, tolerance: float, k_std: float,
            baseline: float | None = None, min_baseline: float = 0.0) -> str:
    """supported: no worse than the baseline by more than ``tolerance``; not supported:
    worse by more than max(tolerance, k_std * spread); inconclusive: in between, or when
    the baseline itself did not learn (mean below ``min_baseline``)."""
    if baseline is not None and baseline < min_baseline:
        return INCONCLUSIVE
    if diff >= -tolerance:
        return SUPPORTED
    if diff < -max(tolerance, k_std * spread):
        return NOT_SUPPORTED
    return INCONCLUSIVE


def summary_verdict(verdicts: list[str]) -> str:
    judged = [v for v in verdicts if v in (SUPPORTED, NOT_SUPPORTED)]
    if not judged:
        return INCONCLUSIVE
    if all(v == SUPPORTED for v in judged):
        return SUPPORTED
    if all(v == NOT_SUPPORTED for v in judged):
        return NOT_SUPPORTED
    return MIXED


def control_rule(rule: str) -> str:
    """``rule`` (params ``claims.control``) if known; else an error naming the accepted."""
    if rule not in CONTROL_RULES:
        raise ParamsError(f"claims.control: unknown rule {rule!r}; accepted: "
                                     + ", ".join(CONTROL_RULES))
    return rule


def pick_control(candidates: list[str], summaries: dict, metric: str, rule: str) -> str | None:
    """Our control among ``candidates`` (configuration names, the baseline first): of those
    in ``summaries`` (an experiment's metrics) with a mean, the one ``rule`` picks; None if
    there is none.  ``best_mean``: the highest mean of ``metric``; ties go to the earlier."""
    control_rule(rule)
    # max keeps the first of equal means: the baseline wins a tie
    return max(with_mean(candidates, summaries, metric),
               key=lambda c: summaries[c][metric]["mean"], default=None)


def with_mean(names: list[str], summaries: dict, metric: str) -> list[str]:
    """``names`` that are in ``summaries`` with a mean of ``metric`` (run, not diverged)."""
    return [n for n in names if n in summaries and summaries[n][metric]["mean"] is not None]
