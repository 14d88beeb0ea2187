"""Gradient jamming: the incoming gradient's magnitude is scrambled by U[0, 1) noise.

The published implementation (freegrad 1.0.1) multiplies the incoming gradient
by u ~ U[0, 1) and, for positive and rectangular jamming, tests the forward
input x. The paper's wording also admits two other readings, offered as options:

* ``test="grad"``: the window is tested on the incoming gradient g instead of x;
* ``mode="sign"``: the magnitude is replaced, keeping the sign: sign(g) · u.

Defaults (``test="input"``, ``mode="scale"``) are the published behaviour.
"""

from __future__ import annotations

import math

import torch

from ..context import _generator, uniform_like
from ..edges import UNIFORM, Edges
from ..interval import Interval
from ..kernels import apply_mask, compute_mask, jam
from ..registry import register
from ._checks import all_of, one_of, ordered

SOURCE = "Troiano et al. 2025, gradient jamming; freegrad 1.0.1 (published behaviour)"
_MODES = one_of(mode=("scale", "sign"))
_TESTS = one_of(test=("input", "grad"))
# Tested on x at forward (test="input"), or on g at backward (test="grad").
NON_NEGATIVE = Interval(lambda **_: (0.0, math.inf))
WINDOW = Interval(lambda a, b, **_: (a, b))


def _jam(ctx, grad_out, mode, mask=None):
    """(g · u) or (sign(g) · u), times the mask where there is one."""
    if mode == "scale":  # one compiled pass where it can: u is drawn in the loop
        fused = jam(grad_out, mask, _generator(ctx))
        if fused is not None:
            return fused
    u = uniform_like(ctx, grad_out)
    jammed = grad_out * u if mode == "scale" else torch.sign(grad_out) * u
    return jammed if mask is None else apply_mask(jammed, mask)


def _saves(params):
    """mask (test='input'), nothing (test='grad')"""
    return "mask" if params["test"] == "input" else "nothing"


@register(
    "full_jam", saves="nothing", check=_MODES, stochastic=True, edges=Edges.x_not_read(),
    formula="g · u (mode='sign': sign(g) · u), u ~ U[0, 1) elementwise", source=SOURCE,
)
def full_jam(ctx, grad_out, input, mode="scale"):
    return _jam(ctx, grad_out, mode)


@register(
    "positive_jam", saves=_saves, mask=NON_NEGATIVE, check=all_of(_MODES, _TESTS), stochastic=True,
    edges=Edges(ends=(0.0,), at_ends=(UNIFORM,), zero=UNIFORM, neg_inf=0, pos_inf=UNIFORM, nan=0),
    formula="g · u · 1[x ≥ 0] (test='grad': 1[g ≥ 0]; mode='sign': sign(g) · u)", source=SOURCE,
)
def positive_jam(ctx, grad_out, mask, test="input", mode="scale"):
    if test == "grad":
        mask = compute_mask(NON_NEGATIVE, grad_out, {})
    return _jam(ctx, grad_out, mode, mask)


@register(
    "rectangular_jam", saves=_saves, mask=WINDOW,
    check=all_of(_MODES, _TESTS, ordered("a", "b")), stochastic=True,
    edges=Edges(ends=("a", "b"), at_ends=(UNIFORM, UNIFORM), zero=UNIFORM, neg_inf=0, pos_inf=0,
                nan=0),
    formula="g · u · 1[a ≤ x ≤ b] (test='grad': 1[a ≤ g ≤ b]; mode='sign': sign(g) · u)",
    source=SOURCE,
)
def rectangular_jam(ctx, grad_out, mask, a=-5.0, b=5.0, test="input", mode="scale"):
    if test == "grad":
        mask = compute_mask(WINDOW, grad_out, {"a": a, "b": b})
    return _jam(ctx, grad_out, mode, mask)
