"""``Activation``: an ``nn.Module`` whose forward is a native op
and whose backward follows the rule in force."""

from __future__ import annotations

import torch
from torch import nn

from .context import MARKERS
from .forwards import get_forward
from .functional import apply_activation


class Activation(nn.Module):
    """A forward activation by name (``"ReLU"``, ``"Logistic"``, ``"Heaviside"``...) and its params.

    With no rule in force this is exactly the native PyTorch op. Inside
    ``freegrad.use(rule, scope="activations")`` (or "all") its backward is the rule.
    """

    def __init__(self, forward: str = "ReLU", **params):
        super().__init__()
        spec = get_forward(forward)
        self.forward_name = forward
        self.params = params
        self._fn = spec.bind(params)
        self._native_grad = spec.native_grad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return apply_activation(x, self.forward_name, self._fn, self._native_grad, self)

    def extra_repr(self) -> str:
        return ", ".join([repr(self.forward_name)] + [f"{k}={v!r}" for k, v in self.params.items()])


# What use(layers=...) looks for: a module that takes "activations" rules (subclasses included).
setattr(Activation, MARKERS["activations"], True)
