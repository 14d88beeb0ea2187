"""Which calls the compiled kernels can take, and which the chunked PyTorch fallback.

The compiled loops take eager CPU float32/float64 tensors outside any graph being recorded,
laid out alike in one dense block; large contiguous CPU tensors they cannot take are worked
chunk by chunk (the temporaries stay in cache); anything else is a plain PyTorch expression.
"""

from __future__ import annotations

import torch

from .build import native

CHUNK = 1 << 18  # elements: a 1 MiB float32 temporary stays in L2; fewer Python steps
MIN_CHUNKED = 4 * CHUNK
NATIVE_DTYPES = (torch.float32, torch.float64)


def eager_cpu(*tensors: torch.Tensor) -> bool:
    """Plain CPU tensors, not traced by torch.compile or wrapped by torch.func."""
    return (
        all(t.device.type == "cpu" for t in tensors)
        and not torch.compiler.is_compiling()
        and not any(torch._C._functorch.is_functorch_wrapped_tensor(t) for t in tensors)
    )


def native_takes(data: torch.Tensor, *others: torch.Tensor) -> bool:
    """Eager CPU float32/float64 tensors outside any graph being recorded, laid out alike in
    one dense block (contiguous, or channels_last as convolutions on the CPU prefer)."""
    return (
        data.dtype in NATIVE_DTYPES
        and not torch.is_grad_enabled()
        and eager_cpu(data, *others)  # first: a vmap-batched tensor cannot say its layout
        and (data.is_contiguous() or data.is_contiguous(memory_format=torch.channels_last))
        and all(t.shape == data.shape and t.stride() == data.stride() for t in others)
        and native() is not None
    )


def one_number(grad: torch.Tensor, mask: torch.Tensor) -> bool:
    """A float32/float64 ``grad`` that is one number expanded to ``mask``'s shape (every stride
    0), with a dense ``mask``: the compiled kernels write ``value · mask`` in one pass."""
    return (
        grad.dtype in NATIVE_DTYPES
        and grad.dim() > 0
        and not torch.is_grad_enabled()
        and eager_cpu(grad, mask)
        and not any(grad.stride())
        and grad.shape == mask.shape
        and (mask.is_contiguous() or mask.is_contiguous(memory_format=torch.channels_last))
        and native() is not None
    )


def chunkable(data: torch.Tensor, *others: torch.Tensor) -> bool:
    """Large same-shape contiguous eager CPU tensors, outside any graph being recorded."""
    return (
        data.numel() >= MIN_CHUNKED
        and not torch.is_grad_enabled()
        and all(t.is_contiguous() for t in (data, *others))
        and all(t.shape == data.shape for t in others)
        and eager_cpu(data, *others)
    )


def chunks(n: int):
    """Slices of ``n`` elements, :data:`CHUNK` at a time."""
    for start in range(0, n, CHUNK):
        yield slice(start, min(start + CHUNK, n))
