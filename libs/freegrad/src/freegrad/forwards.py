"""Forward activations by name, with their parameters.

Each forward is the native PyTorch op; module-level functions (no lambdas) so
models holding them pickle with ``torch.save(model)``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


def identity(x: torch.Tensor) -> torch.Tensor:
    # A view, not x itself: autograd.Function may not save an input returned as-is.
    return x.view_as(x)


def heaviside(x: torch.Tensor) -> torch.Tensor:
    """H(x) = 1 if x > 0 else 0."""
    return torch.heaviside(x, x.new_zeros(()))


def relu6(x: torch.Tensor) -> torch.Tensor:
    return F.relu6(x)


def leaky_relu(x: torch.Tensor, negative_slope: float = 0.01) -> torch.Tensor:
    return F.leaky_relu(x, negative_slope)


def elu(x: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    return F.elu(x, alpha)


def gelu(x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    return F.gelu(x, approximate=approximate)


def softplus(x: torch.Tensor, beta: float = 1.0, threshold: float = 20.0) -> torch.Tensor:
    return F.softplus(x, beta, threshold)


def hardtanh(x: torch.Tensor, min_val: float = -1.0, max_val: float = 1.0) -> torch.Tensor:
    return F.hardtanh(x, min_val, max_val)


@dataclass(frozen=True)
class Forward:
    name: str
    fn: Callable[..., torch.Tensor]
    defaults: dict = field(default_factory=dict)
    # False where PyTorch has no usable derivative (Heaviside raises), so the
    # true derivative comes from the d(F) rule even with no rule in force.
    native_grad: bool = True

    def bind(self, params: dict) -> Callable[[torch.Tensor], torch.Tensor]:
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise TypeError(
                f"forward {self.name!r} got unknown parameter(s) {unknown}; "
                f"it accepts {sorted(self.defaults) or 'no parameters'}"
            )
        if self.name == "GELU" and params.get("approximate", "none") not in ("none", "tanh"):
            raise ValueError(
                f"GELU approximate={params['approximate']!r}; accepted: 'none', 'tanh'"
            )
        return functools.partial(self.fn, **params) if params else self.fn


FORWARDS: dict[str, Forward] = {
    f.name: f
    for f in (
        Forward("Linear", identity),
        Forward("ReLU", torch.relu),
        Forward("ReLU6", relu6),
        Forward("LeakyReLU", leaky_relu, {"negative_slope": 0.01}),
        Forward("ELU", elu, {"alpha": 1.0}),
        Forward("Tanh", torch.tanh),
        Forward("Logistic", torch.sigmoid),
        Forward("SiLU", F.silu),
        Forward("GELU", gelu, {"approximate": "none"}),
        Forward("Softplus", softplus, {"beta": 1.0, "threshold": 20.0}),
        Forward("Heaviside", heaviside, native_grad=False),
        Forward("Sign", torch.sign),
        Forward("HardTanh", hardtanh, {"min_val": -1.0, "max_val": 1.0}),
    )
}


def get_forward(name: str) -> Forward:
    try:
        return FORWARDS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown forward {name!r}; valid forwards are {list(FORWARDS)}") from None
