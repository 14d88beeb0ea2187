"""Kernels of mask rules: compiled single-pass loops, with PyTorch ops as the fallback.

A mask rule keeps ``mask(x)`` at forward (1 byte per element) and returns
``grad · mask`` at backward. Built-in masks are :class:`~freegrad.interval.Interval` s. On
the CPU in eager mode both steps run as the C++ loops of ``csrc/mask_kernels.cpp``:

* forward: when the activation is a built-in forward with a native op (Logistic,
  Tanh, ReLU, ReLU6, HardTanh, LeakyReLU, SiLU, ELU, Softplus, Heaviside, Sign),
  ``fused_forward`` computes y and the mask in one sweep over x (y bit for bit the
  native op's); otherwise the mask is one pass of its own (``compute_mask``);
* backward: ``grad · mask`` in one pass into a fresh gradient (``apply_mask``; also
  when the gradient is one number expanded, as for ``y.sum()``), or the gradient scaled
  outside the mask (d(LeakyReLU)) in one pass; the jamming rules' ``(grad · u) · mask``
  with u drawn in the loop, as ``torch.rand`` draws it (``jam``).

Where PyTorch needs two comparisons, an ``&`` and a conversion, each a pass with a
temporary. The loops are compiled with ``torch.utils.cpp_extension`` (a C++
compiler and ninja; 20-50 s) into ``$TORCH_EXTENSIONS_DIR/freegrad_mask_kernels_<hash>``
(default ~/.cache/torch_extensions), the hash covering the source, the flags, torch's
version and the Python ABI, so checkouts and venvs do not rebuild each other's build;
once built, a folder is loaded directly. ``python -m freegrad.kernels build`` builds
at install time; ``ensure_built()`` builds (or loads) them before anything is timed;
a build at first use says so on stderr. ``native_status()`` says whether they are in use.

Elsewhere - no compiler, ``FREEGRAD_NATIVE=0``, float16/bfloat16, GPUs,
torch.func / torch.compile tracing, a backward that builds a graph - the same
values come from PyTorch ops: on large contiguous CPU tensors chunk by chunk (the
temporaries stay in cache, the mask converts as uint8, which is vectorised), else
as plain expressions. Both paths give identical y, masks and gradients (tested).

The modules: :mod:`.build` (build and load, ``native_status``), :mod:`.ops` (the fused
forward's op codes, the one table the C++ is built from), :mod:`.eligibility` (which calls
the compiled loops or the chunked fallback take), :mod:`.dispatch` (``compute_mask``,
``apply_mask``, ``jam``), :mod:`.fused` (``fused_forward`` and its hand-off of the mask).
This package exports their public names.
"""

from ..interval import Interval  # the rule API's; still importable from here, as before
from .build import (
    BUILD_MESSAGE,
    SOURCE,
    BuildError,
    Loaded,
    build_dir,
    build_flags,
    build_name,
    build_now,
    ensure_built,
    native,
    native_status,
    toolchain_missing,
)
from .dispatch import apply_mask, compute_mask, jam
from .eligibility import CHUNK, MIN_CHUNKED, NATIVE_DTYPES
from .fused import FUSED, fused_forward
from .ops import OPS

__all__ = [
    "BUILD_MESSAGE",
    "CHUNK",
    "FUSED",
    "Interval",
    "MIN_CHUNKED",
    "NATIVE_DTYPES",
    "OPS",
    "SOURCE",
    "BuildError",
    "Loaded",
    "apply_mask",
    "build_dir",
    "build_flags",
    "build_name",
    "build_now",
    "compute_mask",
    "ensure_built",
    "fused_forward",
    "jam",
    "native",
    "native_status",
    "toolchain_missing",
]
