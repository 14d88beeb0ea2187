"""What autograd keeps for backward: ``saved_bytes(fn, *args)``.

Depends on torch only (no freegrad import), so a benchmark can load it by path
beside another package named ``freegrad``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


def saved_bytes(fn: Callable[..., Any], *args: Any) -> int:
    """Bytes autograd keeps for the backward of ``fn(*args)`` (each saved tensor, once per save)."""
    sizes = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        sizes.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*args)
    return sum(sizes)
