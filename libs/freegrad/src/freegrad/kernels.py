"""Memory-bound kernels of mask rules, done in cache-sized chunks on large CPU tensors.

A mask rule's forward computes ``mask(x)`` (several comparisons, each a pass
over ``x`` with a full-size temporary) and its backward ``grad · mask``, where
PyTorch's CPU ``float * bool`` converts the mask outside its vectorised loop.
For large contiguous CPU tensors both run chunk by chunk: temporaries stay in
cache and off fresh pages, and the mask is converted as uint8 (vectorised);
smaller CPU tensors multiply by the mask viewed as uint8. GPUs and
torch.func / torch.compile tracing take the plain expressions, which those
handle well.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

CHUNK = 1 << 18  # elements: a 1 MiB float32 temporary stays in L2; fewer Python steps
MIN_CHUNKED = 4 * CHUNK


def _eager_cpu(*tensors: torch.Tensor) -> bool:
    """Plain CPU tensors, not traced by torch.compile or wrapped by torch.func."""
    return (
        all(t.device.type == "cpu" for t in tensors)
        and not torch.compiler.is_compiling()
        and not any(torch._C._functorch.is_functorch_wrapped_tensor(t) for t in tensors)
    )


def _chunkable(*tensors: torch.Tensor) -> bool:
    first = tensors[0]
    return (
        first.numel() >= MIN_CHUNKED
        and not torch.is_grad_enabled()
        and all(t.shape == first.shape and t.is_contiguous() for t in tensors)
        and _eager_cpu(*tensors)
    )


def _chunks(n: int):
    for start in range(0, n, CHUNK):
        yield slice(start, min(start + CHUNK, n))


def compute_mask(mask_fn: Callable[..., torch.Tensor], x: torch.Tensor, params: dict) -> torch.Tensor:
    """``mask_fn(x, **params)``, a boolean tensor shaped like ``x``."""
    with torch.no_grad():
        if not _chunkable(x):
            return mask_fn(x, **params)
        out = torch.empty(x.shape, dtype=torch.bool)
        flat_x, flat_out = x.view(-1), out.view(-1)
        for part in _chunks(flat_x.numel()):
            flat_out[part] = mask_fn(flat_x[part], **params)
        return out


def apply_mask(grad: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``grad * mask`` for a boolean ``mask`` of the same shape."""
    if not _chunkable(grad, mask):
        # On the CPU, float * uint8 is 2-3x faster than float * bool (measured); same values.
        return grad * (mask.view(torch.uint8) if _eager_cpu(grad, mask) else mask)
    out = torch.empty_like(grad)
    # uint8 -> float converts vectorised; bool -> float does not.
    flat_grad, flat_mask, flat_out = grad.view(-1), mask.view(-1).view(torch.uint8), out.view(-1)
    buffer = torch.empty(CHUNK, dtype=grad.dtype)
    for part in _chunks(flat_grad.numel()):
        chunk = buffer[: part.stop - part.start]
        chunk.copy_(flat_mask[part])
        torch.mul(flat_grad[part], chunk, out=flat_out[part])
    return out
