"""Layer feedback rules: the backward of a Linear or Conv2d layer carries the error through a
matrix B other than its forward weights W.

Backpropagation sends the error back through the transpose of the forward weights:
for y = x Wᵀ + b, ∂L/∂x = g W. A feedback rule keeps the forward (y = x Wᵀ + b, or the
convolution with W) and the true weight and bias gradients (∂L/∂W = gᵀ x, ∂L/∂b = Σ g),
and replaces only the gradient passed to the layer's input by ``g B``
(``conv_transpose2d(g, B)`` for a convolution). The rules say what B is:

* ``fa`` - feedback alignment (Lillicrap et al. 2016): B = R, a random matrix drawn once,
  like the layer's initialisation, and fixed.
* ``usf`` - uniform sign-concordant feedback (Liao, Leibo & Poggio 2016): B = s · sign(W),
  s the standard deviation of the layer's initialisation (the scaling of biotorch, after
  Xiao et al. 2018), recomputed from W at every forward.
* ``brsf`` - batchwise random-magnitude sign-concordant feedback: B = |R| ⊙ sign(W), R drawn
  again at every forward (every batch).
* ``frsf`` - fixed random-magnitude sign-concordant feedback: B = |R| ⊙ sign(W), R drawn once.

R is drawn like the layer's initialisation, ``init``: "kaiming" (PyTorch's default for
``nn.Linear`` and ``nn.Conv2d``, U(−1/√fan_in, 1/√fan_in)) or "xavier" (biotorch's default,
U(−√(6/(fan_in + fan_out)), √(6/(fan_in + fan_out)))). Definitions and scalings follow
biotorch (Sanfiz & Akrout 2021, arXiv 2108.13446, ``biotorch/layers/fa_constructor``).

A rule here is a :class:`FeedbackRule`: ``fn(ctx, weight, draw, **params) -> B``, where
``draw`` is the layer's random draw R (None for a rule that draws nothing). It is registered
like every rule and used with ``scope="feedback"``::

    with fg.use("fa", scope="feedback", seed=0, layers=fg.select(model, "features.*")):
        loss_fn(model(x), y).backward()

on layers that take feedback rules (:class:`~freegrad.feedback_layers.FeedbackLinear`,
:class:`~freegrad.feedback_layers.FeedbackConv2d`; ``fg.convert(model, feedback=True)``).
"""

from __future__ import annotations

import math

import torch

from .registry import register
from .rules import Rule

SCOPE = "feedback"
DRAWS = ("none", "fixed", "batch")  # what a rule draws: nothing, once per layer, every forward
INITS = ("kaiming", "xavier")
SOURCE_FA = "Lillicrap et al. 2016, Nat. Commun. 7:13276; biotorch (Sanfiz & Akrout 2021)"
SOURCE_SF = "Liao, Leibo & Poggio 2016, AAAI; biotorch (Sanfiz & Akrout 2021)"


class FeedbackRule(Rule):
    """A layer feedback rule: ``fn(ctx, weight, draw, **params)`` returns the feedback matrix
    B (shaped like ``weight``); ``draws`` says when the layer draws R for it: "none",
    "fixed" (once per layer, then kept) or "batch" (at every forward)."""

    layer_feedback = True

    def __init__(self, name, fn, *, draws: str, formula: str, source: str, check=None):
        if draws not in DRAWS:
            raise ValueError(f"feedback rule {name!r}: draws={draws!r} is not one of {DRAWS}")
        super().__init__(name, fn, saves="nothing", formula=formula, source=source,
                         stochastic=draws != "none", check=check)
        self.draws = draws

    def __repr__(self) -> str:
        return f"FeedbackRule({self.name!r})"

    def renamed(self, name: str) -> FeedbackRule:
        return FeedbackRule(name, self.fn, draws=self.draws, formula=self.formula,
                            source=self.source, check=self.check)

    def __call__(self, *args, **kwargs):
        raise TypeError(
            f"rule {self.name!r} is a layer feedback rule: it gives a Linear or Conv2d layer's "
            f"backward its feedback matrix, not a gradient; use it with "
            f"fg.use({self.name!r}, scope='feedback') on feedback layers"
        )


def is_feedback_rule(rule) -> bool:
    return bool(getattr(rule, "layer_feedback", False))


def fans(weight: torch.Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a Linear (out, in) or Conv2d (out, in/groups, kh, kw) weight."""
    receptive = math.prod(weight.shape[2:])
    return weight.shape[1] * receptive, weight.shape[0] * receptive


def init_bound(weight: torch.Tensor, init: str) -> float:
    """The half-width a of the initialisation U(−a, a): 1/√fan_in ("kaiming", PyTorch's
    default) or √(6/(fan_in + fan_out)) ("xavier")."""
    fan_in, fan_out = fans(weight)
    return 1.0 / math.sqrt(fan_in) if init == "kaiming" else math.sqrt(6.0 / (fan_in + fan_out))


def init_std(weight: torch.Tensor, init: str) -> float:
    """The standard deviation a/√3 of U(−a, a): 1/√(3 fan_in) or √(2/(fan_in + fan_out))."""
    return init_bound(weight, init) / math.sqrt(3.0)


def draw_like(weight: torch.Tensor, init: str, generator: torch.Generator | None) -> torch.Tensor:
    """R ~ U(−a, a) shaped like ``weight``, a = ``init_bound``, from ``generator`` (None: torch's
    global RNG)."""
    u = torch.rand(weight.shape, generator=generator, dtype=weight.dtype, device=weight.device)
    return (2.0 * u - 1.0) * init_bound(weight, init)


def _check_init(init: str, **_) -> None:
    if init not in INITS:
        raise ValueError(f"feedback rules: init={init!r} is not one of {list(INITS)}")


def _fa(ctx, weight, draw, init="kaiming"):
    """B = R, R ~ init, drawn once per layer and fixed (feedback alignment)."""
    return draw


def _usf(ctx, weight, draw, init="kaiming"):
    """B = s · sign(W), s = std of init (uniform sign-concordant feedback)."""
    return init_std(weight, init) * torch.sign(weight)


def _sign_concordant(ctx, weight, draw, init="kaiming"):
    """B = |R| ⊙ sign(W), R ~ init."""
    return draw.abs() * torch.sign(weight)


_DEFINITIONS = (
    FeedbackRule("fa", _fa, draws="fixed", check=_check_init, source=SOURCE_FA,
                       formula="B = R, R ~ init drawn once per layer (fixed)"),
    FeedbackRule("usf", _usf, draws="none", check=_check_init, source=SOURCE_SF,
                        formula="B = s · sign(W), s = std of init (1/√(3 fan_in) kaiming)"),
    FeedbackRule("brsf", _sign_concordant, draws="batch", check=_check_init,
                         source=SOURCE_SF,
                         formula="B = |R| ⊙ sign(W), R ~ init drawn again every batch"),
    FeedbackRule("frsf", _sign_concordant, draws="fixed", check=_check_init,
                         source=SOURCE_SF,
                         formula="B = |R| ⊙ sign(W), R ~ init drawn once per layer (fixed)"),
)
RULES = tuple(register(rule.name)(rule).name for rule in _DEFINITIONS)  # the exported modes
