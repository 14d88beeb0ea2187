"""``convert(model)``: swap standard activation modules for freegrad ones with the same forward.

Only modules are reached: an activation called functionally inside a model's
``forward`` (``F.relu(x)``, ``x.sigmoid()``) is invisible to a module swap;
replace it by :func:`freegrad.functional.activation` in that code.
"""

from __future__ import annotations

import copy

from torch import nn

from .wrappers import Activation


def _spec(module: nn.Module) -> tuple[str, dict] | None:
    """The freegrad forward (name, params) equal to ``module``'s forward, if any."""
    kind = type(module)  # exact types: ReLU6 is a subclass of Hardtanh
    if kind is nn.ReLU:
        return "ReLU", {}
    if kind is nn.ReLU6:
        return "ReLU6", {}
    if kind is nn.LeakyReLU:
        return "LeakyReLU", {"negative_slope": module.negative_slope}
    if kind is nn.ELU:
        return "ELU", {"alpha": module.alpha}
    if kind is nn.Tanh:
        return "Tanh", {}
    if kind is nn.Sigmoid:
        return "Logistic", {}
    if kind is nn.SiLU:
        return "SiLU", {}
    if kind is nn.GELU:
        return "GELU", {"approximate": module.approximate}
    if kind is nn.Softplus:
        return "Softplus", {"beta": module.beta, "threshold": module.threshold}
    if kind is nn.Hardtanh:
        return "HardTanh", {"min_val": module.min_val, "max_val": module.max_val}
    return None


CONVERTIBLE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.Tanh, nn.Sigmoid, nn.SiLU, nn.GELU,
               nn.Softplus, nn.Hardtanh)


def convert(model: nn.Module, *, inplace: bool = True) -> tuple[nn.Module, dict[str, nn.Module]]:
    """Replace every convertible activation module of ``model`` by an equal :class:`Activation`.

    Returns ``(model, replaced)``: the converted model (``model`` itself, or a deep
    copy with ``inplace=False``) and ``{qualified name: original module}``.
    In-place activations (``nn.ReLU(inplace=True)``) become out-of-place: same values.
    """
    if not inplace:
        model = copy.deepcopy(model)
    replaced = {}
    for parent_name, parent in list(model.named_modules()):
        for child_name, child in list(parent.named_children()):
            spec = _spec(child)
            if spec is None:
                continue
            forward, params = spec
            setattr(parent, child_name, Activation(forward, **params))
            replaced[f"{parent_name}.{child_name}" if parent_name else child_name] = child
    return model, replaced
