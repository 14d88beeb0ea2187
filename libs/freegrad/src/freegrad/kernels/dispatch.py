"""The mask rules' three steps, each on the compiled kernels where they can run, else in
PyTorch ops (chunked on large contiguous CPU tensors): the same values either way."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..interval import Interval
from .build import native
from .eligibility import CHUNK, chunkable, chunks, eager_cpu, native_takes, one_number
from .fused import take_pending


def compute_mask(mask_fn: Callable[..., torch.Tensor], x: torch.Tensor, params: dict
                 ) -> torch.Tensor:
    """``mask_fn(x, **params)``, a boolean tensor shaped like ``x``."""
    fused = take_pending(mask_fn, x, params)
    if fused is not None:
        return fused
    with torch.no_grad():
        if isinstance(mask_fn, Interval) and native_takes(x):
            return native().interval_mask(x, *mask_fn.bounds(**params), *mask_fn.closed)
        if not chunkable(x):
            return mask_fn(x, **params)
        out = torch.empty(x.shape, dtype=torch.bool)
        flat_x, flat_out = x.view(-1), out.view(-1)
        for part in chunks(flat_x.numel()):
            flat_out[part] = mask_fn(flat_x[part], **params)
        return out


def apply_mask(grad: torch.Tensor, mask: torch.Tensor, outside: float = 0.0) -> torch.Tensor:
    """``grad * mask`` for a boolean ``mask`` of the same shape; with ``outside`` ≠ 0,
    ``torch.where(mask, grad, grad * outside)`` (the gradient scaled, not zeroed, outside)."""
    if native_takes(grad, mask):
        return native().masked_grad(grad, mask, outside)
    if one_number(grad, mask):  # e.g. the gradient of y.sum(): one value expanded
        return native().masked_scalar(torch.as_strided(grad, (), ()), mask, outside)
    if outside != 0:
        return torch.where(mask, grad, grad * outside)
    if not chunkable(grad, mask):
        # On the CPU, float * uint8 is 2-3x faster than float * bool (measured); same values.
        return grad * (mask.view(torch.uint8) if eager_cpu(grad, mask) else mask)
    out = torch.empty_like(grad)
    # uint8 -> float converts vectorised; bool -> float does not.
    flat_grad, flat_mask, flat_out = grad.view(-1), mask.view(-1).view(torch.uint8), out.view(-1)
    buffer = torch.empty(CHUNK, dtype=grad.dtype)
    for part in chunks(flat_grad.numel()):
        chunk = buffer[: part.stop - part.start]
        chunk.copy_(flat_mask[part])
        torch.mul(flat_grad[part], chunk, out=flat_out[part])
    return out


def jam(grad: torch.Tensor, mask: torch.Tensor | None,
        generator: torch.Generator | None) -> torch.Tensor | None:
    """``(grad · u) · mask`` (``grad · u`` without a mask), u ~ U[0, 1) drawn as
    ``torch.rand(grad.shape, generator=generator)`` draws it (torch's global generator for None),
    in one compiled loop: the same numbers in the same order, the generator left in the same
    state, and no tensor for u. None where the compiled kernels cannot: the caller's PyTorch ops.
    """
    others = () if mask is None else (mask,)
    if (generator is None or generator.device.type == "cpu") and native_takes(grad, *others):
        return native().jammed_grad(grad, mask, generator)
    return None
