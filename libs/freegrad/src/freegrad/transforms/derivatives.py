"""``d(F)``: the true derivative of each forward ``F``, as a rule.

Any forward can be paired with any of these backwards (Heaviside forward with
``d(Logistic)`` backward, say); ``d(Linear)`` is the constant rule, "F / 1" in
the notation of Troiano et al. (2025). Each formula is the derivative PyTorch's
own autograd uses for the native op (tested against it, gradcheck in float64),
including its choice at the kinks (e.g. d(ReLU)(0) = 0), at ±0 and at ±inf. At NaN each
states one value (the card's edges table): 0 for a window (d(ReLU), d(ReLU6), d(HardTanh): NaN
is in none), NaN for d(ELU), where PyTorch's relu passes g and its hardtanh and elu give one
value in their vectorised loops and another in the scalar tail. A NaN or infinite incoming
gradient is multiplied by the mask (NaN · 0 is NaN), as freegrad 1.0.1's d(ReLU) does, where
PyTorch's relu and hardtanh backwards select and give 0.
"""

from __future__ import annotations

import math

import torch

from ..edges import Edges
from ..interval import Interval
from ..kernels import apply_mask
from ..registry import register
from ._checks import one_of, ordered

SOURCE = "true derivative of the forward; Troiano et al. 2025, Sec. 2"
POSITIVE = Interval(lambda **_: (0.0, math.inf), closed=(False, True))  # x > 0
NAN = math.nan


def _smooth(zero, neg_inf, pos_inf, nan=NAN) -> Edges:
    """The edges of a derivative with no interval: its values at ±0, −inf, +inf and NaN."""
    return Edges(zero=zero, neg_inf=neg_inf, pos_inf=pos_inf, nan=nan)


@register(
    "d(Linear)", saves="nothing", edges=Edges.x_not_read(), formula="g",
    source=SOURCE + " (the constant rule, F / 1)",
)
def d_linear(ctx, grad_out, input):
    """g (constant derivative 1: straight-through)."""
    return grad_out


@register(
    "d(ReLU)", saves="mask", mask=POSITIVE,
    edges=Edges(ends=(0.0,), at_ends=(0,), zero=0, neg_inf=0, pos_inf=1, nan=0),
    formula="g · 1[x > 0]", source=SOURCE,
)
def d_relu(ctx, grad_out, mask):
    return apply_mask(grad_out, mask)


@register(
    "d(ReLU6)", saves="mask", mask=Interval(lambda: (0.0, 6.0), closed=(False, False)),
    edges=Edges(ends=(0.0, 6.0), at_ends=(0, 0), zero=0, neg_inf=0, pos_inf=0, nan=0),
    formula="g · 1[0 < x < 6]", source=SOURCE,
)
def d_relu6(ctx, grad_out, mask):
    return apply_mask(grad_out, mask)


@register(
    "d(LeakyReLU)", saves="mask", mask=POSITIVE,
    edges=Edges(ends=(0.0,), at_ends=(0.01,), zero=0.01, neg_inf=0.01, pos_inf=1, nan=0.01),
    formula="g · (1 if x > 0 else negative_slope)", source=SOURCE,
)
def d_leaky_relu(ctx, grad_out, mask, negative_slope=0.01):
    return apply_mask(grad_out, mask, outside=negative_slope)


@register(
    "d(ELU)", saves="input", edges=_smooth(1, 0, 1),
    formula="g · (1 if x > 0 else alpha · exp(x))", source=SOURCE,
)
def d_elu(ctx, grad_out, input, alpha=1.0):
    return torch.where(input > 0, grad_out, grad_out * alpha * torch.exp(input))


@register(
    "d(Tanh)", saves="input", edges=_smooth(1, 0, 0), formula="g · (1 − tanh²(x))", source=SOURCE,
)
def d_tanh(ctx, grad_out, input):
    return grad_out * (1 - torch.tanh(input) ** 2)


@register(
    "d(Logistic)", saves="input", edges=_smooth(0.25, 0, 0), formula="g · σ(x) · (1 − σ(x))",
    source=SOURCE,
)
def d_logistic(ctx, grad_out, input):
    s = torch.sigmoid(input)
    return grad_out * s * (1 - s)


@register(
    "d(SiLU)", saves="input", edges=_smooth(0.5, NAN, NAN),
    formula="g · σ(x) · (1 + x · (1 − σ(x)))", source=SOURCE,
)
def d_silu(ctx, grad_out, input):
    s = torch.sigmoid(input)
    return grad_out * s * (1 + input * (1 - s))


_K = math.sqrt(2 / math.pi)


@register(
    "d(GELU)", saves="input", check=one_of(approximate=("none", "tanh")),
    edges=_smooth(0.5, NAN, NAN),
    formula="g · (Φ(x) + x · φ(x)); approximate='tanh': g · (½(1 + t) + ½x(1 − t²)·k(1 + 3c·x²)), "
    "t = tanh(k(x + c·x³)), k = √(2/π), c = 0.044715",
    source=SOURCE,
)
def d_gelu(ctx, grad_out, input, approximate="none"):
    if approximate == "tanh":
        t = torch.tanh(_K * (input + 0.044715 * input**3))
        return grad_out * (
            0.5 * (1 + t) + 0.5 * input * (1 - t * t) * _K * (1 + 3 * 0.044715 * input**2)
        )
    cdf = 0.5 * (1 + torch.erf(input / math.sqrt(2)))
    pdf = torch.exp(-0.5 * input**2) / math.sqrt(2 * math.pi)
    return grad_out * (cdf + input * pdf)


@register(
    "d(Softplus)", saves="input", edges=_smooth(0.5, 0, 1),
    formula="g · (σ(beta · x) if beta · x ≤ threshold else 1)",
    source=SOURCE,
)
def d_softplus(ctx, grad_out, input, beta=1.0, threshold=20.0):
    z = input * beta
    return torch.where(z > threshold, grad_out, grad_out * torch.sigmoid(z))


@register(
    "d(Heaviside)", saves="nothing", edges=Edges.x_not_read("zero"),
    formula="0 (almost everywhere)", source=SOURCE,
)
def d_heaviside(ctx, grad_out, input):
    return torch.zeros_like(grad_out)


@register(
    "d(Sign)", saves="nothing", edges=Edges.x_not_read("zero"),
    formula="0 (almost everywhere)", source=SOURCE,
)
def d_sign(ctx, grad_out, input):
    return torch.zeros_like(grad_out)


@register(
    "d(HardTanh)", saves="mask",
    mask=Interval(lambda min_val, max_val: (min_val, max_val), closed=(False, False)),
    check=ordered("min_val", "max_val"), formula="g · 1[min_val < x < max_val]", source=SOURCE,
    edges=Edges(ends=("min_val", "max_val"), at_ends=(0, 0), zero=1, neg_inf=0, pos_inf=0, nan=0),
)
def d_hardtanh(ctx, grad_out, mask, min_val=-1.0, max_val=1.0):
    return apply_mask(grad_out, mask)
