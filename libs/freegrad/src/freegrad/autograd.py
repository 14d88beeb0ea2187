"""The two autograd nodes: an activation with a rule, and a parameter's gradient with a rule.

Both are new-style ``torch.autograd.Function`` (``forward`` + ``setup_context``)
so they work under ``torch.func`` (grad, vmap, jvp) and ``torch.compile``. The
binding - rule, params, random source - is an input of the node, taken when the
forward runs; backward never looks at the context in force at backward time.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping

import torch

from .context import Binding, RuleContext
from .kernels import fused_forward


def run_rule(
    binding: Binding, scope: str, forward: str | None, grad: torch.Tensor, residual,
    forward_params: Mapping | None = None,
) -> torch.Tensor:
    """Apply the bound rule to ``grad`` and check that it returned a usable gradient."""
    ctx = RuleContext(binding.bound.name, scope, forward, binding.generator_for(grad.device),
                      forward_params or {})
    return check_gradient(binding.bound.name, binding.bound.backward(ctx, grad, residual), grad)


def check_gradient(rule: str, out, grad: torch.Tensor) -> torch.Tensor:
    """``out``, if it is a gradient usable in place of ``grad``; else a clear error."""
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"rule {rule!r} returned {type(out).__name__}, not a tensor")
    if out.shape != grad.shape or out.dtype != grad.dtype or out.device != grad.device:
        raise RuntimeError(
            f"rule {rule!r} returned a gradient of shape {tuple(out.shape)}, "
            f"{out.dtype} on {out.device}; expected shape {tuple(grad.shape)}, "
            f"{grad.dtype} on {grad.device}"
        )
    return out


def forward_params(fn: Callable) -> Mapping:
    """The forward's parameters bound into ``fn`` (:meth:`~freegrad.forwards.Forward.bind`)."""
    return fn.keywords if isinstance(fn, functools.partial) else {}


class ActivationFunction(torch.autograd.Function):
    """y = fn(x) forward; grad_x = rule(ctx, grad_y, residual(x)) backward."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor, fn: Callable, forward: str, binding: Binding) -> torch.Tensor:
        # fn(x), with the rule's mask where it can
        return fused_forward(x, fn, forward, binding.bound)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, _, forward, binding = inputs
        residual = binding.bound.residual(x)
        ctx.save_for_backward(*residual)
        ctx.save_for_forward(*residual)
        ctx.binding = binding
        ctx.forward = forward
        ctx.forward_params = forward_params(inputs[1])

    @staticmethod
    def backward(ctx, grad):
        grad_in = run_rule(ctx.binding, "activations", ctx.forward, grad, ctx.saved_tensors,
                           ctx.forward_params)
        return grad_in, None, None, None

    @staticmethod
    def jvp(ctx, x_tangent, *_):
        # The rule's Jacobian is diagonal for elementwise rules, so J v = rule(v).
        return run_rule(ctx.binding, "activations", ctx.forward, x_tangent, ctx.saved_tensors,
                        ctx.forward_params)


class ParamGradFunction(torch.autograd.Function):
    """Identity forward on a parameter; its gradient goes through the rule (input=None)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(param: torch.Tensor, binding: Binding) -> torch.Tensor:
        return param

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.binding = inputs[1]

    @staticmethod
    def backward(ctx, grad):
        residual = (None,) * ctx.binding.bound.n_residuals
        return run_rule(ctx.binding, "params", None, grad, residual), None


# Function.apply binds its arguments to forward's signature on every call, and
# inspect.signature re-parses the function each time (~25 us, as much as a small
# activation's own op); a precomputed signature makes that a lookup.
for _function in (ActivationFunction, ParamGradFunction):
    _function.forward.__signature__ = inspect.signature(_function.forward)
