"""Learnable rule parameters: one ``nn.Parameter`` per layer, trained with the model.

``fg.learnable(model, "triangular", "width", init=1.0)`` gives every ``fg.Activation`` of
``model`` (or those of ``layers=``) a raw parameter ρ, stored at
``<layer>.learned.triangular.width``; the width the layer uses is

    θ = max(softplus(ρ), tiny),  softplus(ρ) = log(1 + e^ρ),  ρ₀ = θ₀ + log(1 − e^(−θ₀))

(θ₀ = ``init``; ``tiny`` the dtype's smallest normal number), so θ > 0 whatever ρ the optimiser
makes (softplus(ρ) ≈ ρ for large ρ: a step in ρ is one in θ; ≈ e^ρ for small). Where a layer
runs its forward under that rule (``fg.use("triangular")``), its θ replaces the block's value of
the parameter, the gradient of x is the rule at θ, and θ gets

    ∂L/∂θ = Σ_elements g · ∂P_θ(x)/∂θ,   P_θ(x) = ∫₀ˣ rule_θ(s) ds

(:mod:`freegrad.primitive`: the gradient θ would have if the layer's forward were the rule's
primitive P_θ; the rule card lists P and ∂P/∂θ of every learnable parameter). Under another
rule, or none, θ is unused and gets no gradient. Only a rule in force by itself uses it (not
as a part of a composite or a blend).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .autograd import check_gradient, forward_params
from .context import Binding, RuleContext, takes_rules
from .interval import Interval
from .registry import get, names
from .rules import BoundRule, Rule
from .targeting import as_layers

SLOT = "learned"  # the ModuleDict an Activation keeps its learned parameters in


def positive(raw: torch.Tensor) -> torch.Tensor:
    """θ = max(softplus(ρ), tiny): the value a raw parameter ρ stands for."""
    return F.softplus(raw).clamp_min(torch.finfo(raw.dtype).tiny)


def raw_for(value: float) -> float:
    """ρ with softplus(ρ) = ``value`` (> 0): ρ = value + log(1 − e^(−value))."""
    return value + math.log(-math.expm1(-value))


def _learnable_rules() -> dict[str, tuple[str, ...]]:
    return {n: r.learnable for n in names() if isinstance(r := get(n), Rule) and r.learnable}


def _rule_and_init(rule: Any, param: str, init: float) -> Rule:
    rule = get(rule)
    learnable = rule.learnable if isinstance(rule, Rule) else ()
    if param not in learnable:
        raise ValueError(
            f"rule {rule.name!r} has no learnable parameter {param!r} "
            f"({'its learnable ones: ' + str(list(learnable)) if learnable else 'it has none'}); "
            f"learnable: {_learnable_rules()}")
    if "." in rule.name:  # a module name: learned.<rule>.<param>
        raise ValueError(f"rule {rule.name!r}: a learnable rule's name has no '.'")
    rule.resolve({param: init})  # init in the rule's range, as any value
    return rule


def _activations(model: nn.Module, layers: Any) -> list[tuple[str, nn.Module]]:
    chosen = as_layers(layers)
    found = [(n, m) for n, m in model.named_modules() if takes_rules(m, "activations")
             and (chosen is None or m in chosen)]
    if not found:
        raise ValueError("fg.learnable: the model holds no freegrad Activation"
                         + (" among the selected layers" if chosen is not None else "")
                         + " (convert it first: fg.convert(model)), so nothing would learn")
    return found


def learnable(model: nn.Module, rule: Any, param: str, init: float, *,
              layers: Any = None) -> dict[str, nn.Parameter]:
    """Make ``rule``'s ``param`` a learned parameter of each ``fg.Activation`` of ``model``
    (or of ``layers=``, a selection as in ``use``), starting at ``init`` (checked as any value).

    Returns ``{qualified name: raw parameter ρ}`` as ``model.named_parameters()`` names them
    (they are model parameters: make the optimiser after this, or add them to it). The value
    used is θ = max(softplus(ρ), tiny) > 0; read it with :func:`learned_values`.
    """
    rule = _rule_and_init(rule, param, init)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    made = {}
    for name, module in _activations(model, layers):
        if SLOT not in module._modules:
            module.add_module(SLOT, nn.ModuleDict())
        slot = module._modules[SLOT]
        if rule.name not in slot:
            slot[rule.name] = nn.ParameterDict()
        if param in slot[rule.name]:
            raise ValueError(f"fg.learnable: layer {name!r} already learns "
                             f"{rule.name!r} {param!r}")
        raw = nn.Parameter(torch.tensor(raw_for(float(init)), device=device))
        slot[rule.name][param] = raw
        made[".".join(p for p in (name, SLOT, rule.name, param) if p)] = raw
    return made


def learned_values(model: nn.Module) -> dict[str, float]:
    """``{"<layer>.learned.<rule>.<param>": θ}``: the value θ each learned parameter of
    ``model`` stands for, under its raw parameter's name (for logging)."""
    out = {}
    for name, module in model.named_modules():
        slot = module._modules.get(SLOT) if takes_rules(module, "activations") else None
        for rule_name, params in (slot.items() if slot is not None else ()):
            for param, raw in params.items():
                key = ".".join(p for p in (name, SLOT, rule_name, param) if p)
                out[key] = float(positive(raw.detach()))
    return out


def apply_learned(x: torch.Tensor, fn: Callable, forward: str, binding: Binding,
                  module: nn.Module) -> torch.Tensor | None:
    """``fn(x)`` with the layer's learned params of the rule in force, or None if it has none."""
    slot = module._modules.get(SLOT)
    bound = binding.bound
    if slot is None or not isinstance(bound, BoundRule) or bound.name not in slot:
        return None
    learned = slot[bound.name]
    names_ = tuple(learned.keys())
    thetas = [positive(learned[n]) for n in names_]
    return LearnedActivationFunction.apply(x, fn, forward, binding, names_, *thetas)


def _residual(rule: Rule, x: torch.Tensor, params: Mapping[str, Any]) -> torch.Tensor:
    """What the rule reads, with tensor params: x, or its mask computed in PyTorch ops."""
    if rule.saves != "mask":
        return x
    if not isinstance(rule.mask, Interval):
        return rule.mask(x, **params)
    lo, hi = rule.mask.bounds(**params)
    tests = [x >= lo if rule.mask.closed[0] else x > lo, x <= hi if rule.mask.closed[1] else x < hi]
    return tests[0] & tests[1]


def learned_backward(ctx: RuleContext, bound: BoundRule, names_: tuple[str, ...],
                     thetas: tuple[torch.Tensor, ...], grad: torch.Tensor, x: torch.Tensor,
                     needs: tuple[bool, ...]) -> tuple:
    """(g · rule_θ(x), Σ g · ∂P_θ(x)/∂θ for each θ): the learned node's backward."""
    params = dict(bound.params) | dict(zip(names_, thetas, strict=True))
    rule = bound.rule
    grad_x = None
    if needs[0]:
        grad_x = check_gradient(bound.name, rule.fn(ctx, grad, _residual(rule, x, params),
                                                     **params), grad)
    grads = []
    for name, theta, need in zip(names_, thetas, needs[1:], strict=True):
        if not need:
            grads.append(None)
            continue
        dtype = torch.promote_types(theta.dtype, grad.dtype)
        d = rule.primitive.grads[name][0](x.to(dtype), **params)
        grads.append((grad.to(dtype) * d).sum().to(theta.dtype).reshape(theta.shape))
    return grad_x, grads


class LearnedActivationFunction(torch.autograd.Function):
    """y = fn(x); backward: g · rule_θ(x) for x and Σ g · ∂P_θ(x)/∂θ for each learned θ."""

    @staticmethod
    def forward(x, fn, forward, binding, names_, *thetas):
        return fn(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, fn, forward, binding, names_, *thetas = inputs
        ctx.save_for_backward(x, *thetas)
        ctx.binding, ctx.forward, ctx.names = binding, forward, names_
        ctx.forward_params = forward_params(fn)

    @staticmethod
    def backward(ctx, grad):
        x, *thetas = ctx.saved_tensors
        b = ctx.binding
        rctx = RuleContext(b.bound.name, "activations", ctx.forward,
                           b.generator_for(grad.device), ctx.forward_params)
        needs = (ctx.needs_input_grad[0], *ctx.needs_input_grad[5:])
        grad_x, grads = learned_backward(rctx, b.bound, ctx.names, tuple(thetas), grad, x, needs)
        return (grad_x, None, None, None, None, *grads)
