"""``Interval``: the mask of a rule that keeps ``1[lo ≤ x ≤ hi]``, part of the rule API.

A rule registered with ``mask=Interval(...)`` runs its mask as the compiled single-pass loops
of :mod:`freegrad.kernels` where they can run; called directly, an ``Interval`` is the
PyTorch expression (the same values). Depends on torch only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Interval:
    """The mask ``1[lo ≤ x ≤ hi]``, its ends given by ``bounds(**params) -> (lo, hi)``.

    ``closed`` says which ends belong to the interval; an infinite end is no test.
    Called as ``mask(x, **params)`` it is the PyTorch expression.
    """

    bounds: Callable[..., tuple[float, float]]
    closed: tuple[bool, bool] = (True, True)

    def __call__(self, x: torch.Tensor, **params) -> torch.Tensor:
        lo, hi = self.bounds(**params)
        if lo == -hi and self.closed == (True, True):
            return x.abs() <= hi  # the same set with one comparison fewer
        tests = []
        if lo != -math.inf:
            tests.append(x >= lo if self.closed[0] else x > lo)
        if hi != math.inf:
            tests.append(x <= hi if self.closed[1] else x < hi)
        if not tests:
            return x == x  # every number: NaN is outside any interval
        return tests[0] if len(tests) == 1 else tests[0] & tests[1]
