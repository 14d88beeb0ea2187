"""Which layers a rule reaches: ``select(model, *specs)``.

A spec is a glob over qualified module names (``"features.*"``, as in
``model.named_modules()``), a module type or tuple of types, or a predicate
``fn(name, module) -> bool``. A matched module brings its submodules along, so
``"features"`` selects the whole block. A spec that matches nothing is an error.

    with fg.use("rectangular", scope="activations", layers=fg.select(model, "features.*")):
        ...
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable

from torch import nn

Spec = str | type | tuple | Callable[[str, nn.Module], bool]


def _matches(spec: Spec, name: str, module: nn.Module) -> bool:
    if isinstance(spec, str):
        return fnmatch.fnmatchcase(name, spec)
    if isinstance(spec, type) or (
        isinstance(spec, tuple) and all(isinstance(t, type) for t in spec)
    ):
        return isinstance(module, spec)
    if callable(spec):
        return bool(spec(name, module))
    raise TypeError(f"a layer spec is a name glob, a module type or a predicate, not {spec!r}")


class Selection(frozenset):
    """The modules a rule may reach (a frozenset of modules, with their names for display)."""

    names: tuple[str, ...]

    def __repr__(self) -> str:
        return f"Selection({list(self.names)})"


def select(model: nn.Module, *specs: Spec) -> Selection:
    """The modules of ``model`` matched by any of ``specs``, with their submodules."""
    if not specs:
        raise ValueError(
            "select needs at least one spec: a name glob, a module type or a predicate"
        )
    named = list(model.named_modules())
    chosen: dict[nn.Module, str] = {}
    for spec in specs:
        hits = [(n, m) for n, m in named if _matches(spec, n, m)]
        if not hits:
            sample = [n for n, _ in named if n][:12]
            raise ValueError(
                f"layer spec {spec!r} matches no module of the model; names include {sample}"
            )
        for name, module in hits:
            for sub_name, sub in module.named_modules(prefix=name):
                chosen.setdefault(sub, sub_name)
    selection = Selection(chosen)
    selection.names = tuple(chosen.values())
    return selection


def as_layers(layers: Selection | nn.Module | Iterable[nn.Module] | None) -> frozenset | None:
    """``use(layers=...)`` accepts a selection, one module, or modules."""
    if layers is None or isinstance(layers, Selection):
        return layers
    if isinstance(layers, nn.Module):
        return select(layers, lambda name, module: name == "")
    modules = list(layers)
    if not modules or not all(isinstance(m, nn.Module) for m in modules):
        raise TypeError("layers= takes fg.select(model, ...), a module, or an iterable of modules")
    return frozenset(sub for m in modules for sub in m.modules())
