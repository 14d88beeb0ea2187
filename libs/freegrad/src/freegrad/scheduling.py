"""Who counts the steps (:class:`Clock`), and a rule's params bound at a step
(:class:`ScheduledParams`).

A ``use`` block whose params hold a schedule (:mod:`freegrad.schedules`) has a clock: the
number of optimiser steps taken so far, ``t``, 0 when the block is made. Advance it by hand
(``block.step()`` after ``optimizer.step()``) or attach it to the optimiser once
(``block.clock.attach(optimizer)``: a step post-hook counts every ``optimizer.step()``). A
forward binds the rule with every schedule's value at the clock's step, checked as any
parameter is: a value out of the rule's range is an error naming the step and the value.
Part of the rule API: imports nothing of the kernels.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

from .schedules import Schedule, from_spec, is_schedule


class Clock:
    """The step ``t`` schedules read: the optimiser steps taken so far.

    ``step(n=1)`` adds ``n``; ``attach(optimizer)`` makes every ``optimizer.step()`` add one
    (``torch.optim.Optimizer.register_step_post_hook``; returns the handle, ``.remove()``
    stops it). ``t`` may be set, to resume a run at the step it stopped at. Share one clock
    between blocks (``use(..., clock=clock)``) to advance them together.
    """

    def __init__(self, t: int = 0):
        self.t = t

    @property
    def t(self) -> int:
        return self._t

    @t.setter
    def t(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ValueError(f"a clock's step t={value!r} must be an integer >= 0")
        self._t = int(value)

    def step(self, n: int = 1) -> int:
        """Advance by ``n`` steps; returns the new step."""
        self.t = self._t + n
        return self._t

    def attach(self, optimizer: Any):
        """Count ``optimizer``'s steps from now on: one per ``optimizer.step()``."""
        return optimizer.register_step_post_hook(lambda opt, args, kwargs: self.step())

    def __repr__(self) -> str:
        return f"Clock(t={self._t})"


class ScheduledParams:
    """A rule's params, some of them schedules, and how to bind them at a step.

    The schedules come from the params given (a :class:`~freegrad.schedules.Schedule` or its
    dict spec) and from the rule's own defaults (``fg.blend(rule, mix=schedule)``). Made only
    where there is one (:meth:`of`); it binds the rule at the clock's step and at every knot
    of every schedule when made, so a schedule that leaves the rule's range fails at once.
    """

    def __init__(self, rule: Any, params: Mapping[str, Any], schedules: dict[str, Schedule],
                 clock: Clock):
        self.rule, self.clock, self.schedules = rule, clock, schedules
        self.constants = {k: v for k, v in params.items() if k not in schedules}
        for t in sorted({clock.t, *(k for s in schedules.values() for k in s.knots())}):
            self.bound_at(t)

    @classmethod
    def of(cls, rule: Any, params: Mapping[str, Any] | None, clock: Clock
           ) -> ScheduledParams | None:
        """The scheduled params of ``rule`` with ``params``, or None where nothing is scheduled."""
        params = dict(params or {})
        merged = {k: v for k, v in getattr(rule, "defaults", {}).items()
                  if isinstance(v, Schedule)} | params
        schedules = {k: from_spec(v) for k, v in merged.items() if is_schedule(v)}
        if not schedules:
            return None
        unknown = sorted(set(params) - set(rule.defaults))
        if unknown and not rule.accepts_any:  # a misspelled name is no schedule's fault
            raise TypeError(f"rule {rule.name!r} got unknown parameter(s) {unknown}; it accepts "
                            f"{sorted(rule.defaults) or 'no parameters'}")
        return cls(rule, params, schedules, clock)

    def values_at(self, t: int) -> dict[str, float]:
        """Each schedule's value at step ``t``."""
        return {k: s.at(t) for k, s in self.schedules.items()}

    def bound_at(self, t: int):
        """The rule bound with the schedules' values at step ``t``; an invalid value is the
        rule's own error, with the step and what each schedule gives there."""
        values = self.values_at(t)
        try:
            return self.rule.bind(self.constants | values)
        except (TypeError, ValueError) as e:
            given = ", ".join(f"{k}={v!r} from {self.schedules[k]!r}" for k, v in values.items())
            name = f"rule {self.rule.name!r}"
            named = str(e) if name in str(e) else f"{name}: {e}"
            raise type(e)(f"{named} (at step {t}: {given})") from None


def numeric_values(params: Mapping[str, Any]) -> dict[str, float]:
    """The real-number entries of ``params`` (what a metrics logger takes)."""
    return {k: float(v) for k, v in params.items()
            if isinstance(v, numbers.Real) and not isinstance(v, bool)}
