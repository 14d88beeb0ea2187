"""``blend(rule, mix)``: a rule's backward mixed with the true derivative.

For an activation ``y = F(x)`` with incoming gradient g, ``blend(rule)`` with parameter
``mix`` (α) computes

    α · rule(g, x) + (1 − α) · d(F)(g, x)

where ``rule(g, x)`` is the rule's own backward and ``d(F)(g, x) = g · F'(x)`` the true one
(the ``d(F)`` rule of the layer's forward, with the forward's parameters). On parameter
gradients (scope="params") the true backward is g itself. α = 1 is the rule alone and α = 0
the true derivative alone, exactly (the other term is not computed, nor its residual kept,
so no NaN or ∞ of it leaks in through a 0 weight); 0 ≤ α ≤ 1. α may be a schedule
(``fg.blend("rectangular", mix=fg.schedules.linear(0.0, 1.0, 1000))``: from the true
derivative to the rule, the smooth warm-up of SpikingJelly), bound at forward like any
parameter. ``fg.get("blend(rectangular)")`` is the same with ``mix`` given to ``use``.

Part of the rule API: the true derivative is looked up through the function the registry
hands in, so this module imports nothing but the rules.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from typing import Any

import torch

from .rules import _EMPTY, _Callable
from .schedules import Schedule, is_schedule

MIX = "mix"


def _check_mix(name: str, mix: Any) -> float:
    if mix is _EMPTY:
        raise TypeError(f"rule {name!r} needs parameter(s) ['{MIX}'] (the rule's weight α)")
    if is_schedule(mix):
        raise TypeError(f"rule {name!r}: parameter {MIX}={mix!r} is a schedule, which has a "
                        f"value only at a step: give it to fg.use(rule, params), whose "
                        f"forwards bind it")
    if isinstance(mix, bool) or not isinstance(mix, numbers.Real) or not 0 <= mix <= 1:
        raise ValueError(f"rule {name!r}: {MIX}={mix!r} must be a number in [0, 1]")
    return float(mix)


class Blend(_Callable):
    """``mix · rule + (1 − mix) · true derivative``; see the module's docstring."""

    def __init__(self, inner: Any, mix: float | Schedule | None,
                 true_derivative: Callable[[str], Any], name: str | None = None):
        if MIX in inner.defaults:
            raise ValueError(f"blend({inner.name!r}): the rule has a parameter named {MIX!r}, "
                             f"the blend's own weight")
        if mix is not None and not isinstance(mix, Schedule):
            _check_mix(f"blend({inner.name})", mix)
        self.inner, self.true_derivative = inner, true_derivative
        self.name = name or f"blend({inner.name})"
        self.defaults = dict(inner.defaults) | {MIX: _EMPTY if mix is None else mix}
        self.accepts_any = inner.accepts_any
        self.stochastic = inner.stochastic
        self.formula = f"{MIX} · [{inner.name}] + (1 − {MIX}) · [d(F)]"
        self.source = "blend"
        self.edges = None

    def __repr__(self) -> str:
        return f"Blend({self.name!r})"

    def renamed(self, name: str) -> Blend:
        mix = self.defaults[MIX]
        return Blend(self.inner, None if mix is _EMPTY else mix, self.true_derivative, name)

    def bind(self, params: Mapping[str, Any] | None = None) -> BoundBlend:
        params = dict(params or {})
        mix = _check_mix(self.name, params.pop(MIX, self.defaults[MIX]))
        return BoundBlend(self.name, self.inner.bind(params), mix, self.true_derivative)


class BoundBlend:
    """A blend with checked params: the rule's residual and the input, as ``mix`` needs."""

    def __init__(self, name: str, inner: Any, mix: float, true_derivative: Callable[[str], Any]):
        self.name, self.inner, self.mix = name, inner, mix
        self.true_derivative = true_derivative
        self.params = {**getattr(inner, "params", {}), MIX: mix}
        self.saves = inner.saves if mix == 1 else "input"
        self.n_residuals = inner.n_residuals + 1
        self._true: dict[tuple, Any] = {}

    @property
    def needs_input(self) -> bool:
        return self.mix != 0 and self.inner.needs_input

    def residual(self, input: torch.Tensor | None) -> tuple:
        ours = (None,) * self.inner.n_residuals if self.mix == 0 else self.inner.residual(input)
        return ours + ((None if self.mix == 1 else input),)

    def backward(self, ctx, grad_out: torch.Tensor, residual: tuple) -> torch.Tensor:
        if self.mix == 1:
            return self.inner.backward(ctx, grad_out, residual[:-1])
        true = self._true_backward(ctx, grad_out, residual[-1])
        if self.mix == 0:
            return true
        ruled = self.inner.backward(ctx, grad_out, residual[:-1])
        return self.mix * ruled + (1 - self.mix) * true

    def _true_backward(self, ctx, grad_out: torch.Tensor, x: torch.Tensor | None):
        if x is None:
            return grad_out  # a parameter's gradient: the identity's true derivative
        forward = getattr(ctx, "forward", None)
        if forward is None:
            raise ValueError(f"rule {self.name!r} needs the forward's name (ctx.forward) for "
                             f"its true derivative; it runs on freegrad activations")
        params = dict(getattr(ctx, "forward_params", None) or {})
        key = (forward, tuple(sorted(params.items())))
        if key not in self._true:
            self._true[key] = self.true_derivative(forward).bind(params)
        bound = self._true[key]
        return bound.backward(ctx, grad_out, bound.residual(x))
