"""The fused forward: F(x) and a rule's :class:`~freegrad.interval.Interval` mask of x in one
compiled sweep, the mask handed to the :func:`~.dispatch.compute_mask` call that asks for it.

Fused where F is a built-in forward with a native op (:data:`FUSED`); not Linear (its forward
is a view: nothing to compute) nor GELU (ATen picks its thread ranges from its own grain size,
so blocks could not follow its scalar tails).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable

import torch

from ..forwards import FORWARDS
from ..interval import Interval
from .build import native
from .eligibility import native_takes
from .ops import CODES

# forward name -> (op code, from .ops; its two scalar params from the forward's params)
FUSED: dict[str, tuple[int, Callable[[dict], tuple[float, float]]]] = {
    "Logistic": (CODES["SIGMOID"], lambda p: (0.0, 0.0)),
    "Tanh": (CODES["TANH"], lambda p: (0.0, 0.0)),
    "ReLU": (CODES["RELU"], lambda p: (0.0, 0.0)),
    "SiLU": (CODES["SILU"], lambda p: (0.0, 0.0)),
    "HardTanh": (CODES["HARDTANH"], lambda p: (p["min_val"], p["max_val"])),
    "ReLU6": (CODES["HARDTANH"], lambda p: (0.0, 6.0)),
    "LeakyReLU": (CODES["LEAKY_RELU"], lambda p: (p["negative_slope"], 0.0)),
    "ELU": (CODES["ELU"], lambda p: (p["alpha"], 0.0)),
    "Softplus": (CODES["SOFTPLUS"], lambda p: (p["beta"], p["threshold"])),
    "Heaviside": (CODES["HEAVISIDE"], lambda p: (0.0, 0.0)),
    "Sign": (CODES["SIGN"], lambda p: (0.0, 0.0)),
}
_pending = threading.local()  # .value: (x, x's version, mask function, params, mask) or None


def _fusable(fn: Callable, forward: str, bound) -> tuple | None:
    """The kernel arguments (op, p0, p1, lo, hi, lo_closed, hi_closed) when ``fn`` is the
    built-in forward ``forward`` and ``bound`` a rule that keeps an :class:`Interval` of x."""
    entry = FUSED.get(forward)
    mask = getattr(getattr(bound, "rule", None), "mask", None)
    if entry is None or getattr(bound, "saves", None) != "mask" or not isinstance(mask, Interval):
        return None
    spec = FORWARDS[forward]
    base, given = (fn.func, fn.keywords) if isinstance(fn, functools.partial) else (fn, {})
    if base is not spec.fn or (isinstance(fn, functools.partial) and fn.args):
        return None
    op, scalars = entry
    params = spec.defaults | given
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in params.values()):
        return None
    return (op, *map(float, scalars(params)), *map(float, mask.bounds(**bound.params)),
            *mask.closed)


def fused_forward(x: torch.Tensor, fn: Callable, forward: str, bound) -> torch.Tensor:
    """``fn(x)``; where the compiled kernels can, the rule's mask of x is computed in the same
    sweep and handed to the :func:`~.dispatch.compute_mask` call that asks for it next (the
    rule's residual, right after the forward), bit for bit the mask computed apart."""
    args = _fusable(fn, forward, bound)
    if args is None or not native_takes(x):
        return fn(x)
    y, mask = native().fused_interval_forward(x, *args)
    _pending.value = (x, x._version, bound.rule.mask, bound.params, mask)
    return y


def take_pending(mask_fn, x: torch.Tensor, params: dict) -> torch.Tensor | None:
    """The mask :func:`fused_forward` computed for exactly this call, or None (and forgotten)."""
    pending = getattr(_pending, "value", None)
    if pending is None:
        return None
    _pending.value = None
    px, version, pfn, pparams, mask = pending
    same = px is x and version == x._version and pfn is mask_fn and pparams == params
    return mask if same else None
