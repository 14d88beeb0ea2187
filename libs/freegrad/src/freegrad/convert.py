"""``convert(model)``: swap standard activation modules for freegrad ones with the same forward.

Only modules are reached: an activation called functionally inside a model's
``forward`` (``F.relu(x)``, ``x.sigmoid()``) is invisible to a module swap;
replace it by :func:`freegrad.functional.activation` in that code.
"""

from __future__ import annotations

import copy

from torch import nn

from .wrappers import Activation

# module type -> (freegrad forward, attributes carried over as its params)
CONVERTIBLE: dict[type, tuple[str, tuple[str, ...]]] = {
    nn.ReLU: ("ReLU", ()),
    nn.ReLU6: ("ReLU6", ()),
    nn.LeakyReLU: ("LeakyReLU", ("negative_slope",)),
    nn.ELU: ("ELU", ("alpha",)),
    nn.Tanh: ("Tanh", ()),
    nn.Sigmoid: ("Logistic", ()),
    nn.SiLU: ("SiLU", ()),
    nn.GELU: ("GELU", ("approximate",)),
    nn.Softplus: ("Softplus", ("beta", "threshold")),
    nn.Hardtanh: ("HardTanh", ("min_val", "max_val")),
}


def _equivalent(module: nn.Module) -> Activation | None:
    """The freegrad activation with ``module``'s forward, if there is one."""
    spec = CONVERTIBLE.get(type(module))  # exact types: ReLU6 subclasses Hardtanh
    if spec is None:
        return None
    forward, attributes = spec
    return Activation(forward, **{a: getattr(module, a) for a in attributes})


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
            replacement = _equivalent(child)
            if replacement is None:
                continue
            setattr(parent, child_name, replacement)
            replaced[f"{parent_name}.{child_name}" if parent_name else child_name] = child
    return model, replaced
