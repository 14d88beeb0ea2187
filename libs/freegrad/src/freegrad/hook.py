"""Rules on parameter gradients (scope="params").

:func:`attach_param_hooks` adds a forward pre-hook to every module that owns
parameters. When a ``use`` block covering "params" is in force as the module's
forward starts, each parameter is passed through an identity node carrying
that rule, so the rule is bound at forward time like an activation's; the
parameter itself is restored when the forward ends. With no rule in force the
hook does nothing. The rule acts on each use's gradient before it is
accumulated into ``param.grad`` - and so before DistributedDataParallel's
all-reduce, which runs as gradients accumulate.

Not for modules whose forward runs concurrently on several threads: the
parameters are swapped on the module object while its forward runs.
"""

from __future__ import annotations

from torch import nn
from torch.utils.hooks import RemovableHandle

from .autograd import ParamGradFunction
from .context import MARKERS, current

_ORIGINALS = "_freegrad_param_originals"
_ATTACHED = MARKERS["params"]  # what use(layers=...) looks for: a module with parameter hooks


def _bind_params(module: nn.Module, args) -> None:
    binding = current("params", module)
    if binding is None:
        return
    if binding.bound.needs_input:
        binding.bound.residual(None)  # raises the rule's clear "needs the input" error
    originals = {}
    for name, param in module._parameters.items():
        if param is not None and param.requires_grad:
            originals[name] = param
            module._parameters[name] = ParamGradFunction.apply(param, binding)
    module.__dict__[_ORIGINALS] = originals


def _restore_params(module: nn.Module, args, output) -> None:
    module._parameters.update(module.__dict__.pop(_ORIGINALS, {}))


class _Handles:
    def __init__(self, pairs: list[tuple[nn.Module, list[RemovableHandle]]]):
        self.pairs = pairs

    def remove(self) -> None:
        for module, handles in self.pairs:
            for h in handles:
                h.remove()
            module.__dict__.pop(_ATTACHED, None)


def attach_param_hooks(model: nn.Module) -> _Handles:
    """Let scope="params" rules reach ``model``'s parameters. Idempotent; ``.remove()`` undoes it.

    Call it again after ``torch.load`` of a state_dict into a fresh model.
    """
    pairs = []
    for module in model.modules():
        has_own_params = any(True for _ in module.parameters(recurse=False))
        if module.__dict__.get(_ATTACHED) or not has_own_params:
            continue
        handles = [
            module.register_forward_pre_hook(_bind_params),
            module.register_forward_hook(_restore_params, always_call=True),
        ]
        module.__dict__[_ATTACHED] = True
        pairs.append((module, handles))
    return _Handles(pairs)
