"""``convert(model)``: swap standard activation modules for freegrad ones with the same forward;
``strip(model)``: swap them back.

Only modules are reached: an activation called functionally inside a model's
``forward`` (``F.relu(x)``, ``x.sigmoid()``) is invisible to a module swap;
replace it by :func:`freegrad.functional.activation` in that code.
"""

from __future__ import annotations

import copy

from torch import nn

from .feedback_layers import TORCH_LAYERS, FeedbackLayer, swap_layer
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
# freegrad forward -> the torch module computing it, the forward's params its arguments
TORCH_MODULES: dict[str, type[nn.Module]] = {
    forward: module for module, (forward, _) in CONVERTIBLE.items()
} | {"Linear": nn.Identity}
_SETTINGS = "_freegrad_torch_settings"  # what convert saw that the forward does not need


def _equivalent(module: nn.Module, feedback: bool) -> nn.Module | None:
    """The freegrad activation with ``module``'s forward, if there is one; with ``feedback``,
    the feedback layer of an ``nn.Linear`` or ``nn.Conv2d`` too (sharing its parameters)."""
    if feedback and type(module) in TORCH_LAYERS:
        return swap_layer(module, TORCH_LAYERS[type(module)])
    spec = CONVERTIBLE.get(type(module))  # exact types: ReLU6 subclasses Hardtanh
    if spec is None:
        return None
    forward, attributes = spec
    activation = Activation(forward, **{a: getattr(module, a) for a in attributes})
    if getattr(module, "inplace", False):  # kept for strip, which gives the module back as it was
        activation.__dict__[_SETTINGS] = {"inplace": True}
    return activation


def convert(model: nn.Module, *, inplace: bool = True, feedback: bool = False
            ) -> tuple[nn.Module, dict[str, nn.Module]]:
    """Replace every convertible activation module of ``model`` by an equal :class:`Activation`;
    with ``feedback=True`` also every ``nn.Linear`` and ``nn.Conv2d`` (exact types) by a
    :class:`~freegrad.feedback_layers.FeedbackLinear` / ``FeedbackConv2d`` holding the same
    parameter objects, so layer feedback rules (``scope="feedback"``) reach it.

    Returns ``(model, replaced)``: the converted model (``model`` itself, or a deep
    copy with ``inplace=False``) and ``{qualified name: original module}``.
    In-place activations (``nn.ReLU(inplace=True)``) become out-of-place: same values
    (:func:`strip` gives them back in place).
    """
    if not inplace:
        model = copy.deepcopy(model)
    replaced = {}
    for parent_name, parent in list(model.named_modules()):
        for child_name, child in list(parent.named_children()):
            replacement = _equivalent(child, feedback)
            if replacement is None:
                continue
            setattr(parent, child_name, replacement)
            replaced[f"{parent_name}.{child_name}" if parent_name else child_name] = child
    return model, replaced


def _torch_module(name: str, activation: Activation | FeedbackLayer) -> nn.Module:
    """The plain torch module computing ``activation``'s forward, or a clear error."""
    if isinstance(activation, FeedbackLayer):  # back to its torch layer, same parameters
        torch_type = next(t for t, f in TORCH_LAYERS.items() if isinstance(activation, f))
        return swap_layer(activation, torch_type)
    module_type = TORCH_MODULES.get(activation.forward_name)
    if module_type is None:
        raise ValueError(
            f"fg.strip: {name!r} is fg.Activation({activation.forward_name!r}), a forward that no "
            f"torch module computes; torch modules exist for {sorted(TORCH_MODULES)}. Replace "
            "that layer yourself before stripping"
        )
    module = module_type(**activation.params, **activation.__dict__.get(_SETTINGS, {}))
    return module.train(activation.training)


def strip(model: nn.Module, *, inplace: bool = True) -> tuple[nn.Module, dict[str, Activation]]:
    """Replace every :class:`Activation` in ``model`` by the plain torch module with its forward:
    the inverse of :func:`convert`; a feedback layer becomes its ``nn.Linear`` / ``nn.Conv2d``.

    A module that ``convert`` replaced comes back as the same class with the same settings
    (``nn.ReLU(inplace=True)`` included); an ``Activation`` built directly becomes the torch
    module computing its forward (``"Logistic"`` an ``nn.Sigmoid``, ``"Linear"`` an
    ``nn.Identity``). The state dict is unchanged, and the result holds no freegrad layer, so
    ``torch.export`` and other tools that know only torch modules take it. A forward with no
    torch module (Heaviside, Sign) is a ``ValueError`` naming the layer, raised before anything
    is changed. Returns ``(model, stripped)``: ``model`` itself, or a deep copy with
    ``inplace=False``, and ``{qualified name: the Activation taken out}``.
    """
    if not inplace:
        model = copy.deepcopy(model)
    swaps = []
    for parent_name, parent in list(model.named_modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, (Activation, FeedbackLayer)):
                name = f"{parent_name}.{child_name}" if parent_name else child_name
                swaps.append((parent, child_name, name, _torch_module(name, child)))
    stripped = {}
    for parent, child_name, name, module in swaps:
        stripped[name] = getattr(parent, child_name)
        setattr(parent, child_name, module)
    return model, stripped
