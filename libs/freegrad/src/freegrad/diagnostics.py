"""How far a rule moves the gradient from the true one
(Proposition 1 of Troiano et al. 2025, measured).

For one batch, per parameter tensor ``p`` with true gradient ``t`` and gradient
under the rule ``r``:

* cosine similarity ``⟨t, r⟩ / (‖t‖ ‖r‖)`` (0 when either is zero),
* sign agreement: the fraction of elements with ``sign(t) == sign(r)``,
* norm ratio ``‖r‖ / ‖t‖`` (inf when ``t`` is zero and ``r`` is not).

The model's buffers (BatchNorm statistics) and torch's global RNG are left as
they were, so measuring does not change training.

For layer feedback rules (:mod:`freegrad.feedback`), :func:`feedback_angles` gives the angle
between each layer's feedback matrix B and its forward weights W, both flattened:
∠(B, W) = arccos(⟨B, W⟩ / (‖B‖ ‖W‖)) in degrees (biotorch's layer alignment,
``compute_matrix_angle``; Lillicrap et al. 2016 measure the same alignment).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from .context import exact, use
from .feedback_layers import FeedbackLayer

METRICS = ("cosine", "sign_agreement", "norm_ratio")


def compare(true: torch.Tensor, other: torch.Tensor) -> dict[str, float]:
    """The three agreement measures between two gradients of one tensor."""
    t, r = true.detach().flatten().double(), other.detach().flatten().double()
    nt, nr = float(t.norm()), float(r.norm())
    cosine = float(t @ r) / (nt * nr) if nt > 0 and nr > 0 else 0.0
    ratio = nr / nt if nt > 0 else (math.inf if nr > 0 else 1.0)
    sign_agreement = float((t.sign() == r.sign()).double().mean())
    return {"cosine": cosine, "sign_agreement": sign_agreement, "norm_ratio": ratio}


def _gradients(model: nn.Module, loss_fn: Callable[[], torch.Tensor]) -> dict[str, torch.Tensor]:
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss_fn(), [p for _, p in named], allow_unused=True)
    return {
        n: (g if g is not None else torch.zeros_like(p))
        for (n, p), g in zip(named, grads, strict=True)
    }


def gradient_agreement(
    model: nn.Module,
    loss_fn: Callable[[], torch.Tensor],
    rule: Any,
    params: Mapping[str, Any] | None = None,
    scope: str = "activations",
    **use_kwargs: Any,
) -> dict[str, dict[str, float]]:
    """``{parameter name: {cosine, sign_agreement, norm_ratio}}`` plus ``"all"``
    (every parameter as one vector).

    ``loss_fn()`` computes the loss of one batch with ``model``; it runs twice,
    once with the true derivatives (inside ``fg.exact()``, so a training run's own
    rule block does not leak in) and once under ``use(rule, params, scope, **use_kwargs)``.
    """
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    rng = torch.get_rng_state()

    def restore():
        torch.set_rng_state(rng)
        with torch.no_grad():
            for n, b in model.named_buffers():
                b.copy_(buffers[n])

    with exact():  # the truth, even inside a training run's rule block
        true = _gradients(model, loss_fn)
    restore()
    with use(rule, params, scope, **use_kwargs):
        ruled = _gradients(model, loss_fn)
    restore()
    result = {n: compare(true[n], ruled[n]) for n in true}
    result["all"] = compare(torch.cat([g.flatten() for g in true.values()]),
                            torch.cat([g.flatten() for g in ruled.values()]))
    return result


class GradientDiagnostics:
    """Training callback: every ``every`` steps, measure agreement and pass it to ``log``.

    ``log(metrics, step)`` receives flat names ``"<metric>/<parameter>"`` - e.g.
    ``mlflow.log_metrics(metrics, step=step)``; ``history`` keeps every measurement.
    """

    def __init__(self, model: nn.Module, rule: Any, params=None, scope="activations", *,
                 every: int = 100, log: Callable[[dict[str, float], int], None] | None = None,
                 **use_kwargs):
        if every < 1:
            raise ValueError(f"every={every!r} must be >= 1")
        use(rule, params, scope, **use_kwargs)  # bad rule or params fail now, not at step N
        self.model, self.rule, self.params, self.scope = model, rule, params, scope
        self.every, self.log, self.use_kwargs = every, log, use_kwargs
        self.history: list[tuple[int, dict[str, dict[str, float]]]] = []

    def __call__(self, step: int, loss_fn: Callable[[], torch.Tensor]) -> dict | None:
        if step % self.every:
            return None
        result = gradient_agreement(self.model, loss_fn, self.rule, self.params, self.scope,
                                    **self.use_kwargs)
        self.history.append((step, result))
        if self.log is not None:
            self.log({f"{m}/{name}": v[m] for name, v in result.items() for m in METRICS}, step)
        return result


def matrix_angle(a: torch.Tensor, b: torch.Tensor) -> float:
    """The angle in degrees between ``a`` and ``b`` flattened (float64; NaN if one is zero)."""
    x, y = a.detach().flatten().double(), b.detach().flatten().double()
    norms = float(x.norm() * y.norm())
    if norms == 0.0:
        return math.nan
    return math.degrees(math.acos(max(-1.0, min(1.0, float(x @ y) / norms))))


def feedback_angles(model: nn.Module) -> dict[str, float]:
    """``{layer name: ∠(B, W) in degrees}`` for every feedback layer of ``model`` that has run a
    forward under a feedback rule (B: its ``last_feedback``; W: its weight now).

    0° is backpropagation's B = W, 90° a B orthogonal to W; a sign-concordant B (``usf``,
    ``brsf``, ``frsf``) is under 90° by construction, feedback alignment's starts near 90°
    and falls as W aligns with B. A model with no such layer is a ``ValueError``.
    """
    angles = {name: matrix_angle(m.last_feedback, m.weight) for name, m in model.named_modules()
              if isinstance(m, FeedbackLayer) and m.last_feedback is not None}
    if not angles:
        raise ValueError(
            "feedback_angles: no layer of the model has a feedback matrix: it needs "
            "fg.FeedbackLinear / fg.FeedbackConv2d layers (fg.convert(model, feedback=True)) "
            "that ran a forward with gradients inside fg.use(<rule>, scope='feedback'), "
            "<rule> one of fg.names('feedback')")
    return angles
