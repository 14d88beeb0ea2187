"""Schedules: a rule parameter as a function of the optimiser step t (t = 0, 1, 2, ...).

Small immutable objects, called on the step, in the manner of optax's schedules::

    fg.schedules.constant(0.5)                      # 0.5
    fg.schedules.linear(1.0, 0.25, steps=1000)      # 1.0 -> 0.25 over 1000 steps, then 0.25
    fg.schedules.cosine(1.0, 0.25, steps=1000)      # the same ends, a half cosine between
    fg.schedules.piecewise([300, 600], [1.0, 0.5, 0.25])

Give one as a parameter of :class:`freegrad.use` (``fg.use("triangular", {"width":
fg.schedules.linear(2.0, 0.5, 1000)})``); the block counts the steps (``block.step()``, or a
:class:`freegrad.Clock` attached to the optimiser) and every forward binds the value of its step.
A schedule is also a plain dict (``spec()`` / :func:`from_spec`), the form a params.yaml gives:
``{"schedule": "linear", "start": 1.0, "end": 0.25, "steps": 1000}``. Imports nothing of freegrad.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = ["Schedule", "constant", "cosine", "from_spec", "is_schedule", "linear", "piecewise",
           "KINDS"]


def _number(kind: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"schedule {kind!r}: {name}={value!r} must be a finite real number")
    return float(value)


def _steps(kind: str, name: str, value: Any, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        raise ValueError(f"schedule {kind!r}: {name}={value!r} must be an integer >= {least}")
    return int(value)


def _step(t: Any) -> int:
    if isinstance(t, bool) or not isinstance(t, numbers.Integral) or t < 0:
        raise ValueError(f"a schedule's step t={t!r} must be an integer >= 0")
    return int(t)


class Schedule:
    """A parameter's value at each step: ``schedule(t) -> float``. ``knots()`` are the steps
    where its formula changes (its value at every step lies between its values there);
    ``spec()`` is the plain dict :func:`from_spec` reads back."""

    kind: ClassVar[str]
    keys: ClassVar[tuple[str, ...]]

    def __call__(self, t: int) -> float:
        return self.at(_step(t))

    def at(self, t: int) -> float:
        """The value at step ``t`` (an integer >= 0, not checked: call the schedule)."""
        raise NotImplementedError

    def knots(self) -> tuple[int, ...]:
        return (0,)

    def spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schedule": self.kind}
        for key in self.keys:
            value = getattr(self, key)
            out[key] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True)
class Constant(Schedule):
    """``value`` at every step."""

    value: float
    kind: ClassVar[str] = "constant"
    keys: ClassVar[tuple[str, ...]] = ("value",)

    def at(self, t: int) -> float:
        return self.value

    def __repr__(self) -> str:
        return f"constant({self.value!r})"


@dataclass(frozen=True)
class Linear(Schedule):
    """``start + (end − start) · min(t, T) / T``, T = ``steps``: a straight line, then ``end``."""

    start: float
    end: float
    steps: int
    kind: ClassVar[str] = "linear"
    keys: ClassVar[tuple[str, ...]] = ("start", "end", "steps")

    def at(self, t: int) -> float:
        return self.start + (self.end - self.start) * min(t, self.steps) / self.steps

    def knots(self) -> tuple[int, ...]:
        return (0, self.steps)

    def __repr__(self) -> str:
        return f"linear({self.start!r}, {self.end!r}, steps={self.steps})"


@dataclass(frozen=True)
class Cosine(Schedule):
    """``end + (start − end) · (1 + cos(π · min(t, T) / T)) / 2``, T = ``steps``: a half cosine
    from ``start`` to ``end`` (flat at both ends), then ``end``."""

    start: float
    end: float
    steps: int
    kind: ClassVar[str] = "cosine"
    keys: ClassVar[tuple[str, ...]] = ("start", "end", "steps")

    def at(self, t: int) -> float:
        if t >= self.steps:
            return self.end  # exactly: cos(π) is -1 only to rounding
        return self.end + (self.start - self.end) * (1 + math.cos(math.pi * t / self.steps)) / 2

    def knots(self) -> tuple[int, ...]:
        return (0, self.steps)

    def __repr__(self) -> str:
        return f"cosine({self.start!r}, {self.end!r}, steps={self.steps})"


@dataclass(frozen=True)
class Piecewise(Schedule):
    """``values[i]`` for ``boundaries[i−1] ≤ t < boundaries[i]``: ``values[0]`` before the first
    boundary, ``values[k]`` from boundary k on (``len(values) == len(boundaries) + 1``)."""

    boundaries: tuple[int, ...]
    values: tuple[float, ...]
    kind: ClassVar[str] = "piecewise"
    keys: ClassVar[tuple[str, ...]] = ("boundaries", "values")

    def at(self, t: int) -> float:
        return self.values[sum(1 for b in self.boundaries if b <= t)]

    def knots(self) -> tuple[int, ...]:
        return (0, *self.boundaries)

    def __repr__(self) -> str:
        return f"piecewise({list(self.boundaries)}, {list(self.values)})"


def constant(value: float) -> Constant:
    """``value`` at every step."""
    return Constant(_number("constant", "value", value))


def linear(start: float, end: float, steps: int) -> Linear:
    """From ``start`` at t = 0 to ``end`` at t = ``steps`` in a straight line, then ``end``:
    ``start + (end − start) · min(t, steps) / steps``."""
    return Linear(_number("linear", "start", start), _number("linear", "end", end),
                  _steps("linear", "steps", steps, 1))


def cosine(start: float, end: float, steps: int) -> Cosine:
    """From ``start`` at t = 0 to ``end`` at t = ``steps`` along a half cosine, then ``end``:
    ``end + (start − end) · (1 + cos(π · min(t, steps) / steps)) / 2``."""
    return Cosine(_number("cosine", "start", start), _number("cosine", "end", end),
                  _steps("cosine", "steps", steps, 1))


def piecewise(boundaries: Sequence[int], values: Sequence[float]) -> Piecewise:
    """Step-wise: ``values[0]`` until ``boundaries[0]``, ``values[k]`` from ``boundaries[k−1]``
    on; ``boundaries`` strictly increasing integers > 0, one value more than boundaries."""
    bounds = tuple(_steps("piecewise", "boundaries", b, 1) for b in boundaries)
    vals = tuple(_number("piecewise", "values", v) for v in values)
    if any(b >= c for b, c in zip(bounds, bounds[1:], strict=False)):
        raise ValueError(f"schedule 'piecewise': boundaries={list(bounds)} must increase")
    if len(vals) != len(bounds) + 1:
        raise ValueError(f"schedule 'piecewise': {len(bounds)} boundaries need "
                         f"{len(bounds) + 1} values, not {len(vals)}")
    return Piecewise(bounds, vals)


KINDS = {"constant": (constant, ("value",)), "linear": (linear, ("start", "end", "steps")),
         "cosine": (cosine, ("start", "end", "steps")),
         "piecewise": (piecewise, ("boundaries", "values"))}


def is_schedule(value: Any) -> bool:
    """Whether ``value`` is a schedule or its dict spec (a mapping with a "schedule" key)."""
    return isinstance(value, Schedule) or (isinstance(value, Mapping) and "schedule" in value)


def from_spec(spec: Mapping[str, Any] | Schedule) -> Schedule:
    """The schedule a plain dict names: ``{"schedule": "linear", "start": 1.0, "end": 0.1,
    "steps": 1000}`` (kinds and keys: :data:`KINDS`); a schedule is returned as it is.
    An unknown kind, an unknown or a missing key is a ``ValueError`` naming what is accepted."""
    if isinstance(spec, Schedule):
        return spec
    if not isinstance(spec, Mapping) or "schedule" not in spec:
        raise ValueError(f"a schedule spec is a dict with a 'schedule' key, not {spec!r}")
    kind = spec["schedule"]
    if kind not in KINDS:
        raise ValueError(f"unknown schedule {kind!r}; kinds are {sorted(KINDS)}")
    make, keys = KINDS[kind]
    given = set(spec) - {"schedule"}
    unknown, missing = sorted(given - set(keys)), [k for k in keys if k not in given]
    if unknown or missing:
        problem = (f"unknown key(s) {unknown}" if unknown else "") + (
            "; " if unknown and missing else "") + (f"missing key(s) {missing}" if missing else "")
        raise ValueError(f"schedule {kind!r}: {problem}; it takes {list(keys)}")
    return make(*(spec[k] for k in keys))
