"""Surrogate derivatives of spiking-network work, for step-like forwards.

Each replaces dH/dx of a Heaviside spike by a smooth or windowed bump centred
on the threshold (x = 0); the scale parameter sets its width/height.
"""

from __future__ import annotations

import math

import torch

from ..edges import Edges
from ..interval import Interval
from ..kernels import apply_mask
from ..primitive import Primitive
from ..registry import register
from ._checks import positive

# Each surrogate's primitive P(x) = ∫₀ˣ rule (its smooth forward, less its value at 0) and
# ∂P/∂θ of its scale θ, written to give their limits at ±inf (0, or ∓1/slope² for fast_sigmoid)
# rather than inf · 0; NaN gives NaN (straight_through's 0: NaN is in no window, nor beyond).


def _at_inf_zero(x, value):
    return torch.where(torch.isinf(x), torch.zeros_like(value), value)


ARCTAN = Primitive(
    lambda x, alpha: torch.atan(math.pi / 2 * alpha * x) / math.pi,
    "atan(π/2 · alpha · x) / π",
    {"alpha": (lambda x, alpha: 0.5 / (1 / x + (math.pi / 2 * alpha) ** 2 * x),
               "(x / 2) / (1 + (π/2 · alpha · x)²)")})
FAST_SIGMOID = Primitive(
    lambda x, slope: x / (1 + slope * x.abs()),
    "x / (1 + slope · |x|)",
    {"slope": (lambda x, slope: -torch.sign(x) / (1 / x.abs() + slope) ** 2,
               "−x · |x| / (1 + slope · |x|)²")})
SIGMOID = Primitive(
    lambda x, slope: torch.sigmoid(slope * x) - 0.5,
    "σ(slope · x) − ½",
    {"slope": (lambda x, slope: _at_inf_zero(
        x, x * torch.sigmoid(slope * x) * torch.sigmoid(-slope * x)),
        "x · σ(slope · x) · (1 − σ(slope · x))")})
GAUSSIAN = Primitive(
    lambda x, sigma: 0.5 * torch.special.erf(x / (sigma * math.sqrt(2))),
    "Φ(x / sigma) − ½",
    {"sigma": (lambda x, sigma: _at_inf_zero(
        x, -x / sigma * torch.exp(-0.5 * (x / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))),
        "−(x / sigma) · exp(−x² / (2 sigma²)) / (sigma · √(2π))")})
STRAIGHT_THROUGH = Primitive(
    lambda x, threshold: torch.clamp(x, -threshold, threshold),
    "clamp(x, −threshold, threshold)",
    {"threshold": (lambda x, threshold: torch.sign(x) * (x.abs() > threshold),
                   "sign(x) · 1[|x| > threshold]")})


@register(
    "arctan", saves="input", check=positive("alpha"), primitive=ARCTAN,
    edges=Edges(zero=1, neg_inf=0, pos_inf=0, nan=math.nan),
    formula="g · (alpha / 2) / (1 + (π/2 · alpha · x)²)",
    source="Fang et al. 2021 (SpikingJelly ATan surrogate); snnTorch ATan",
)
def arctan(ctx, grad_out, input, alpha=2.0):
    return grad_out * (alpha / 2) / (1 + (math.pi / 2 * alpha * input) ** 2)


@register(
    "fast_sigmoid", saves="input", check=positive("slope"), primitive=FAST_SIGMOID,
    edges=Edges(zero=1, neg_inf=0, pos_inf=0, nan=math.nan),
    formula="g / (1 + slope · |x|)²",
    source="Zenke & Ganguli 2018 (SuperSpike); snnTorch fast_sigmoid",
)
def fast_sigmoid(ctx, grad_out, input, slope=25.0):
    return grad_out / (1 + slope * input.abs()) ** 2


@register(
    "sigmoid", saves="input", check=positive("slope"), primitive=SIGMOID,
    edges=Edges(zero=6.25, neg_inf=0, pos_inf=0, nan=math.nan),
    formula="g · slope · σ(slope · x) · (1 − σ(slope · x))",
    source="Zenke & Vogels 2021; snnTorch sigmoid surrogate",
)
def sigmoid(ctx, grad_out, input, slope=25.0):
    s = torch.sigmoid(slope * input)
    return grad_out * slope * s * (1 - s)


@register(
    "gaussian", saves="input", check=positive("sigma"), primitive=GAUSSIAN,
    edges=Edges(zero=1 / (0.5 * math.sqrt(2 * math.pi)), neg_inf=0, pos_inf=0, nan=math.nan),
    formula="g · exp(−x² / (2 sigma²)) / (sigma · √(2π))",
    source="Wu et al. 2018 (STBP, Gaussian approximation of the spike derivative)",
)
def gaussian(ctx, grad_out, input, sigma=0.5):
    return grad_out * torch.exp(-0.5 * (input / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))


@register(
    "straight_through", saves="mask", mask=Interval(lambda threshold: (-threshold, threshold)),
    check=positive("threshold"), primitive=STRAIGHT_THROUGH,
    edges=Edges(ends=("-threshold", "threshold"), at_ends=(1, 1), zero=1, neg_inf=0, pos_inf=0,
                nan=0),
    formula="g · 1[|x| ≤ threshold]",
    source="Bengio et al. 2013; Hubara et al. 2016 (straight-through estimator, saturated)",
)
def straight_through(ctx, grad_out, mask, threshold=1.0):
    return apply_mask(grad_out, mask)
