"""Shape-replacing and gradient-shaping rules.

``rectangular`` and ``triangular`` replace the activation's derivative by a
window around zero (Troiano et al. 2025, Sec. 4, LeNet-5 experiments); the
others act on the incoming gradient alone and so also work on parameter
gradients (scope="params").
"""

from __future__ import annotations

import math

import torch

from ..context import normal_like
from ..edges import Edges
from ..interval import Interval
from ..kernels import apply_mask
from ..primitive import Primitive
from ..registry import register
from ._checks import all_of, non_negative, one_of, ordered, positive

PAPER = "Troiano et al. 2025 (arXiv 2509.07236)"
PUBLISHED = "freegrad 1.0.1 (the paper's companion library)"


@register(
    "rectangular", saves="mask", mask=Interval(lambda a, b: (a, b)),
    check=ordered("a", "b"),
    edges=Edges(ends=("a", "b"), at_ends=(1, 1), zero=1, neg_inf=0, pos_inf=0, nan=0),
    formula="g · 1[a ≤ x ≤ b]", source=f"{PAPER}, rectangular derivative",
)
def rectangular(ctx, grad_out, mask, a=-0.5, b=0.5):
    return apply_mask(grad_out, mask)


def _triangle_primitive(x, width):
    m = x.abs().clamp(max=width)
    return torch.sign(x) * (m - m * m / (2 * width))


def _triangle_d_width(x, width):
    m = x.abs().clamp(max=width)
    return torch.sign(x) * m * m / (2 * width * width)


@register(
    "triangular", saves="input", check=positive("width"),
    primitive=Primitive(
        _triangle_primitive, "sign(x) · (m − m² / (2 width)), m = min(|x|, width)",
        {"width": (_triangle_d_width, "sign(x) · m² / (2 width²)")}),
    edges=Edges(ends=("-width", "width"), at_ends=(0, 0), zero=1, neg_inf=0, pos_inf=0,
                nan=math.nan),
    formula="g · max(0, 1 − |x| / width)", source=f"{PAPER}, triangular derivative",
)
def triangular(ctx, grad_out, input, width=1.0):
    return grad_out * (1 - input.abs() / width).clamp_min(0)


@register("scale", saves="nothing", edges=Edges.x_not_read(), formula="s · g", source=PUBLISHED)
def scale(ctx, grad_out, input, s=1.0):
    return grad_out * s


@register(
    "clip_norm", saves="nothing", check=positive("max_norm", "eps"),
    edges=Edges.x_not_read("norm"),
    formula="g · min(1, max_norm / max(‖g‖₂, eps)), ‖g‖₂ over the whole tensor",
    source=f"{PUBLISHED}; Pascanu et al. 2013 (gradient norm clipping)",
)
def clip_norm(ctx, grad_out, input, max_norm=1.0, eps=1e-12):
    norm = torch.linalg.vector_norm(grad_out).clamp_min(eps)
    return grad_out * (max_norm / norm).clamp(max=1.0)


@register(
    "noise", saves="nothing", stochastic=True, edges=Edges.x_not_read("sum"),
    check=all_of(non_negative("sigma"), one_of(mode=("additive", "multiplicative"))),
    formula="g + sigma · ε (mode='multiplicative': g · (1 + sigma · ε)), ε ~ N(0, 1) elementwise",
    source=f"{PAPER}, noisy derivative (noise on the constant rule); {PUBLISHED} (additive); "
    "multiplicative: our reading of 'a noisy derivative', noise on the constant rule's 1",
)
def noise(ctx, grad_out, input, sigma=0.1, mode="additive"):
    """Additive (the published default) adds noise of a fixed scale, which swamps gradients
    much smaller than sigma; multiplicative scales the noise with the gradient."""
    eps = normal_like(ctx, grad_out)
    if mode == "additive":
        return grad_out + sigma * eps
    return grad_out * (1 + sigma * eps)


@register(
    "centralize", saves="nothing", check=one_of(keepdim=(True,)),
    edges=Edges.x_not_read("slice"),
    formula="g − mean(g, dim)", source=f"{PUBLISHED}; Yong et al. 2020 (gradient centralization)",
)
def centralize(ctx, grad_out, input, dim=-1, keepdim=True):
    """g − mean(g, dim). keepdim exists for the published API; only True keeps the shape."""
    return grad_out - grad_out.mean(dim=dim, keepdim=keepdim)
