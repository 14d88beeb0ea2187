"""Layers that take feedback rules: :class:`FeedbackLinear` and :class:`FeedbackConv2d`.

Each is its torch layer (a subclass, same parameters and state dict). With no feedback rule in
force its forward is exactly ``nn.Linear``'s / ``nn.Conv2d``'s, backward included. Inside
``fg.use(rule, scope="feedback")`` (:mod:`freegrad.feedback`) the forward is still
``F.linear(x, W, b)`` / ``F.conv2d(x, W, b, ...)``, and the backward (:class:`FeedbackFunction`)
gives

* the input  ∂L/∂x = g B (Linear), conv_transpose2d(g, B) (Conv2d): B the rule's matrix,
* the weight ∂L/∂W and bias ∂L/∂b: the true gradients, as autograd computes them,

as feedback alignment does (Lillicrap et al. 2016; biotorch's ``LinearGrad`` / ``Conv2dGrad``,
Sanfiz & Akrout 2021). B is computed when the forward runs, from W at that time, and kept by
the autograd node. A rule's fixed draw R (``fa``, ``frsf``) is drawn at the layer's first
forward under it, from the block's random source (``use(..., seed=)``), and kept in
``layer.feedback_draws`` (one per ``init``; not in the state dict: the same seed draws it
again); ``layer.reset_feedback()`` forgets it. ``layer.last_feedback`` is the B of the last
forward (what :func:`freegrad.diagnostics.feedback_angles` measures).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .context import MARKERS, RuleContext, current
from .feedback import SCOPE, draw_like
from .functional import _differentiated


@dataclass(frozen=True)
class LinearOp:
    """y = x Wᵀ + b over the last dimension of x."""

    def forward(self, x, weight, bias):
        return F.linear(x, weight, bias)

    def input_grad(self, grad, feedback, x):
        return grad @ feedback  # g B

    def param_grads(self, grad, x, weight, needs_weight, needs_bias):
        g2 = grad.reshape(-1, grad.shape[-1])
        grad_w = g2.mT @ x.reshape(-1, x.shape[-1]) if needs_weight else None
        return grad_w, (g2.sum(0) if needs_bias else None)


@dataclass(frozen=True)
class Conv2dOp:
    """y = conv2d(x, W, b) with numeric stride, padding, dilation and groups."""

    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int

    def forward(self, x, weight, bias):
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def _backward(self, grad, x, weight, mask):
        return torch.ops.aten.convolution_backward(
            grad, x, weight, [weight.shape[0]] if mask[2] else None, self.stride, self.padding,
            self.dilation, False, [0, 0], self.groups, mask)

    def input_grad(self, grad, feedback, x):
        return self._backward(grad, x, feedback, [True, False, False])[0]  # conv_transpose(g, B)

    def param_grads(self, grad, x, weight, needs_weight, needs_bias):
        _, grad_w, grad_b = self._backward(grad, x, weight, [False, needs_weight, needs_bias])
        return grad_w, grad_b


class FeedbackFunction(torch.autograd.Function):
    """Forward ``op.forward(x, W, b)``; backward: g B to x, the true gradients to W and b."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, weight, bias, feedback, op):
        return op.forward(x, weight, bias)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, bias, feedback, op = inputs
        ctx.save_for_backward(x, weight, feedback)
        ctx.op, ctx.has_bias = op, bias is not None

    @staticmethod
    def backward(ctx, grad):
        x, weight, feedback = ctx.saved_tensors
        needs = ctx.needs_input_grad
        grad_x = ctx.op.input_grad(grad, feedback, x) if needs[0] else None
        grad_w, grad_b = ctx.op.param_grads(grad, x, weight, needs[1], needs[2] and ctx.has_bias)
        return grad_x, grad_w, grad_b, None, None


FeedbackFunction.forward.__signature__ = inspect.signature(FeedbackFunction.forward)


class FeedbackLayer:
    """What :class:`FeedbackLinear` and :class:`FeedbackConv2d` add to their torch layer."""

    def _init_feedback(self) -> None:
        self.feedback_draws: dict[str, torch.Tensor] = {}
        self.last_feedback: torch.Tensor | None = None

    def reset_feedback(self) -> None:
        """Forget the fixed draws; the next forward under ``fa`` / ``frsf`` draws again."""
        self.feedback_draws.clear()

    def _draw(self, rule, init: str, weight, generator) -> torch.Tensor | None:
        if rule.draws == "batch":
            return draw_like(weight, init, generator)
        if rule.draws == "none":
            return None
        draw = self.feedback_draws.get(init)
        if draw is None:
            draw = self.feedback_draws[init] = draw_like(weight, init, generator)
        return draw.to(weight)

    def feedback_matrix(self, binding) -> torch.Tensor:
        """B of the rule bound in ``binding``, from W now (no graph); kept as ``last_feedback``."""
        bound, weight = binding.bound, self.weight.detach()
        generator = binding.generator_for(weight.device)
        ctx = RuleContext(bound.name, SCOPE, type(self).__name__, generator)
        with torch.no_grad():
            draw = self._draw(bound.rule, bound.params["init"], weight, generator)
            feedback = bound.rule.fn(ctx, weight, draw, **bound.params)
        if feedback.shape != weight.shape:
            raise RuntimeError(f"feedback rule {bound.name!r} returned a matrix of shape "
                               f"{tuple(feedback.shape)}; the weight is {tuple(weight.shape)}")
        self.last_feedback = feedback
        return feedback

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        binding = current(SCOPE, self) if _differentiated(x) else None
        if binding is None:
            return super().forward(x)  # the torch layer's own forward and backward
        x, op = self._prepared(x)
        return FeedbackFunction.apply(x, self.weight, self.bias, self.feedback_matrix(binding),
                                      op)


class FeedbackLinear(FeedbackLayer, nn.Linear):
    """``nn.Linear`` whose input gradient follows the feedback rule in force (if any)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_feedback()

    def _prepared(self, x):
        return x, LinearOp()


def _numeric_padding(conv: nn.Conv2d) -> tuple[int, int]:
    """``conv.padding`` as numbers: 'valid' is 0, 'same' the symmetric padding it stands for."""
    if not isinstance(conv.padding, str):
        return tuple(conv.padding)
    if conv.padding == "valid":
        return (0, 0)
    total = [d * (k - 1) for d, k in zip(conv.dilation, conv.kernel_size, strict=True)]
    if any(t % 2 for t in total):
        raise ValueError(f"FeedbackConv2d: padding='same' with kernel {conv.kernel_size} and "
                         f"dilation {conv.dilation} pads unevenly; give numeric padding")
    return tuple(t // 2 for t in total)


class FeedbackConv2d(FeedbackLayer, nn.Conv2d):
    """``nn.Conv2d`` whose input gradient follows the feedback rule in force (if any)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_feedback()

    def _prepared(self, x):
        padding = _numeric_padding(self)
        if self.padding_mode != "zeros":  # as nn.Conv2d: pad first (its own autograd), then 0
            x = F.pad(x, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            padding = (0, 0)
        return x, Conv2dOp(tuple(self.stride), padding, tuple(self.dilation), self.groups)


# What use(layers=...) looks for: a module that takes "feedback" rules.
for _layer in (FeedbackLinear, FeedbackConv2d):
    setattr(_layer, MARKERS[SCOPE], True)

TORCH_LAYERS = {nn.Linear: FeedbackLinear, nn.Conv2d: FeedbackConv2d}


def _constructor_args(layer: nn.Module) -> dict:
    if isinstance(layer, nn.Linear):
        return {"in_features": layer.in_features, "out_features": layer.out_features}
    return {k: getattr(layer, k) for k in ("in_channels", "out_channels", "kernel_size",
                                           "stride", "padding", "dilation", "groups",
                                           "padding_mode")}


def swap_layer(layer: nn.Module, to: type[nn.Module]) -> nn.Module:
    """A ``to`` layer with ``layer``'s settings holding the same parameter objects (so an
    optimiser built on ``layer`` keeps training it), in ``layer``'s train/eval mode."""
    new = to(**_constructor_args(layer), bias=layer.bias is not None, device="meta")
    new.weight, new.bias = layer.weight, layer.bias
    return new.train(layer.training)
