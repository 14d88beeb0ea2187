"""Functional forms: an activation call, and VJP/JVP under a rule.

Activations called functionally inside a model's ``forward`` (``F.relu(x)``)
cannot be reached by :class:`~freegrad.wrappers.Activation`; call
:func:`activation` there instead.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch.autograd import forward_ad

from .autograd import ActivationFunction
from .context import Binding, current, use
from .forwards import get_forward
from .learning import apply_learned
from .registry import get


@functools.cache
def _true_derivative(forward: str) -> Binding:
    return Binding(get(f"d({forward})").bind(), frozenset({"activations"}))


def _differentiated(x: torch.Tensor) -> bool:
    """Whether a derivative of this call can be taken: reverse mode, forward mode or torch.func."""
    return (
        torch.is_grad_enabled()
        or forward_ad._current_level >= 0
        or torch.compiler.is_compiling()  # the compiled graph decides; keep the node
        or torch._C._functorch.is_functorch_wrapped_tensor(x)
    )


def apply_activation(
    x: torch.Tensor, forward: str, fn: Callable, native_grad: bool,
    module: torch.nn.Module | None = None,
) -> torch.Tensor:
    """``fn(x)`` with the activation rule in force now (for ``module``) bound to its backward."""
    if not _differentiated(x):
        return fn(x)  # no graph is recorded (e.g. evaluation under no_grad): nothing to bind
    binding = current("activations", module)
    if binding is None:
        if native_grad:
            return fn(x)  # no rule: the native op, its own backward, nothing added
        binding = _true_derivative(forward)
    elif module is not None and "learned" in module._modules:  # fg.learnable's parameters
        y = apply_learned(x, fn, forward, binding, module)
        if y is not None:
            return y
    return ActivationFunction.apply(x, fn, forward, binding)


def activation(x: torch.Tensor, forward: str = "ReLU", **params) -> torch.Tensor:
    """The forward ``forward`` (e.g. "Logistic") applied to ``x``;
    its backward follows the rule in force."""
    spec = get_forward(forward)
    return apply_activation(x, forward, spec.bind(params), spec.native_grad)


def _maybe_use(rule, params, scope):
    return use(rule, params, scope) if rule is not None else contextlib.nullcontext()


def vjp(
    f: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    rule: Any = None,
    params: Mapping[str, Any] | None = None,
    scope: str = "all",
) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """``(f(x), vjp_fn)`` with ``vjp_fn(v) = vᵀ J`` under ``rule``, bound when f runs."""
    with _maybe_use(rule, params, scope):
        x = x.detach().requires_grad_(True)
        y = f(x)

    def vjp_fn(v: torch.Tensor) -> torch.Tensor:
        (g,) = torch.autograd.grad(y, x, v, retain_graph=True)
        return g

    return y, vjp_fn


def jvp(
    f: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    v: torch.Tensor,
    *,
    rule: Any = None,
    params: Mapping[str, Any] | None = None,
    scope: str = "all",
) -> torch.Tensor:
    """``J v`` by exact forward-mode AD (``torch.func.jvp``), with activations under ``rule``.

    For elementwise rules the rule's Jacobian is diagonal, so ``J v`` is the rule
    applied to the tangent; for rules that are not linear in the gradient
    (noise, clip_norm) it is that map applied to ``v``.
    """
    with _maybe_use(rule, params, scope):
        _, tangent = torch.func.jvp(f, (x,), (v,))
    return tangent
