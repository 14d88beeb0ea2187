"""``Edges``: what a rule's backward gives at the edges, the contract its card states.

The edges of ``x`` are the ends of the rule's interval (where it has one), −0 and +0, −inf and
+inf, and NaN; at each the rule states its backward for g = 1 and its default parameters. It
also states what a NaN or infinite incoming gradient g gives. A built-in rule declares them with
``register(..., edges=Edges(...))``; the rule card (:mod:`freegrad.cards`) shows them, and the
tests pin them in every dtype on both code paths (the compiled kernels and the PyTorch ops) and
check them against the published freegrad 1.0.1. Part of the rule API: imports nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

UNIFORM = "u"  # a jamming rule's draw u ~ U[0, 1) at that element (g · u for g = 1)

# What a NaN or infinite g gives: key -> the card's words (the tests check each key's meaning).
GRAD = {
    "product": "× g",
    "zero": "0 (whatever g is, NaN too)",
    "sum": "g + sigma·ε: NaN stays NaN, ±inf stays ±inf",
    "norm": "a NaN anywhere makes all NaN; an inf makes the finite entries 0 and itself NaN",
    "slice": "a NaN or ±inf makes its slice along dim NaN or ±inf",
}
GRAD_NOTE = (
    '"× g": the backward is g times the value for g = 1, so a NaN g gives NaN and an infinite g '
    "gives ±inf, or NaN where that value is 0 (∞ · 0 is NaN), as PyTorch's own products do."
)

Value = float | str  # a number, NaN included, or UNIFORM


@dataclass(frozen=True)
class Edges:
    """A rule's backward at the edges of x, for g = 1 and the rule's default parameters.

    ``ends`` names the interval's ends: a parameter (``"a"``), a negated one (``"-width"``) or a
    number (``6.0``); ``at_ends`` is the value at each. ``zero`` is the value at −0 and at +0,
    ``neg_inf``/``pos_inf`` at −inf/+inf, ``nan`` at NaN. ``grad`` is a key of :data:`GRAD`.
    ``reads_x=False`` (:meth:`x_not_read`): the backward does not depend on x at all.
    """

    ends: tuple[str | float, ...] = ()
    at_ends: tuple[Value, ...] = ()
    zero: Value = math.nan
    neg_inf: Value = math.nan
    pos_inf: Value = math.nan
    nan: Value = math.nan
    grad: str = "product"
    reads_x: bool = True

    def __post_init__(self):
        if len(self.ends) != len(self.at_ends):
            raise ValueError(f"Edges: {len(self.ends)} ends but {len(self.at_ends)} values")
        if self.grad not in GRAD:
            raise ValueError(f"Edges: grad={self.grad!r}; accepted: {list(GRAD)}")
        for value in (*self.at_ends, self.zero, self.neg_inf, self.pos_inf, self.nan):
            if isinstance(value, str) and value != UNIFORM:
                raise ValueError(f"Edges: value {value!r} is neither a number nor {UNIFORM!r}")

    @classmethod
    def x_not_read(cls, grad: str = "product") -> Edges:
        """A rule whose backward is the same at every x (it never reads x)."""
        return cls(grad=grad, reads_x=False)

    def end_points(self, params: dict) -> list[tuple[str, float]]:
        """``(label, x)`` of each end, x from ``params``."""
        points = []
        for end in self.ends:
            if isinstance(end, str):
                name = end.lstrip("-")
                points.append((end, -params[name] if end.startswith("-") else params[name]))
            else:
                points.append((_number(end), float(end)))
        return points

    def points(self, params: dict) -> list[tuple[str, float, Value]]:
        """``(label, x, value)`` at every edge: the ends, −0, +0, −inf, +inf, NaN."""
        ends = [(label, x, v) for (label, x), v in zip(self.end_points(params), self.at_ends,
                                                        strict=True)]
        return ends + [("-0", -0.0, self.zero), ("+0", 0.0, self.zero),
                       ("-inf", -math.inf, self.neg_inf), ("+inf", math.inf, self.pos_inf),
                       ("NaN", math.nan, self.nan)]


def _number(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "−inf" if v < 0 else "+inf"
    short = f"{v:.4g}"
    return short if float(short) == v else f"≈{short}"


def describe(value: Value) -> str:
    """A value as the card writes it: ``1``, ``0.25``, ``≈0.7979``, ``NaN``, ``u``."""
    return value if isinstance(value, str) else _number(float(value)).replace("-", "−")
