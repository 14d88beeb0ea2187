"""The op codes of the fused forward: one table, for Python and for the C++.

``OPS`` lists the ATen ops ``fused_interval_forward`` (``csrc/mask_kernels.cpp``) runs, an
op's code being its place in the list. The build passes the table to the compiler as
``-DFG_OP_<NAME>=<code>`` (:func:`defines`, part of the build's flags and so of its hash),
and the C++ enum of ops is made of those macros; the compiled module reports the ops it
implements with their codes (``fused_ops()``), and the loader refuses one whose table is not
this one (:func:`check`): an op added here but not to the C++ fails at load, one removed here
fails to compile.
"""

from __future__ import annotations

OPS = ("SIGMOID", "TANH", "RELU", "SILU", "HARDTANH", "LEAKY_RELU", "ELU", "SOFTPLUS",
       "HEAVISIDE", "SIGN")
CODES: dict[str, int] = {name: code for code, name in enumerate(OPS)}


def defines() -> list[str]:
    """The compiler flags that give the C++ its op codes."""
    return [f"-DFG_OP_{name}={code}" for name, code in CODES.items()]


def check(module) -> None:
    """Refuse (RuntimeError) a compiled module whose op codes are not :data:`CODES`."""
    built = dict(module.fused_ops()) if hasattr(module, "fused_ops") else None
    if built != CODES:
        raise RuntimeError(
            f"the compiled kernels' fused op codes {built} are not freegrad.kernels.ops.CODES "
            f"{CODES}: csrc/mask_kernels.cpp and kernels/ops.py list different ops"
        )
