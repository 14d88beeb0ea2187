"""Backward rules and their composites: what a rule keeps at forward and does at backward.

A rule is a function ``fn(ctx, grad_out, input, **params) -> grad_in``. It is
wrapped in a :class:`Rule`, which knows the rule's parameters (from the
function's signature), checks them, and knows what the rule must keep from
the forward pass:

* ``saves="nothing"`` - the rule ignores ``input`` (constant rules, noise,
  clipping); nothing is kept for backward and ``input`` is ``None``.
* ``saves="mask"`` - the rule needs only a boolean function of the input,
  ``mask(input, **params)``, computed at forward time and kept at one byte
  per element; the rule function then receives that mask as ``input``.
* ``saves="input"`` - the rule needs the forward input.

A rule that declares ``"mask"`` or ``"input"`` cannot run without the input: on
parameter gradients (or called with ``input=None``) it raises a clear error. A
rule registered without ``saves`` keeps the published freegrad 1.0.1 contract:
the input is kept when there is one (an activation), and the rule receives
``input=None`` on parameter gradients and when called with ``None``.

``saves`` may also be a function of the resolved params returning one of
these, for rules whose needs depend on an option; the first line of its docstring is what
the rule card (``freegrad.cards``) shows, e.g. "mask (test='input'), nothing (test='grad')".

Rules are metadata above no C++ build: this module imports nothing of the compiled kernels.
A mask rule's mask is computed by :data:`compute_mask`, which freegrad's package root sets to
:func:`freegrad.kernels.compute_mask` (the compiled loops, and the mask a fused forward has
computed already) with :func:`set_compute_mask`.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import torch

from .edges import Edges
from .primitive import Primitive
from .schedules import is_schedule

SAVES = ("nothing", "mask", "input")
_EMPTY = inspect.Parameter.empty
MaskComputer = Callable[[Callable[..., torch.Tensor], torch.Tensor, dict], torch.Tensor]


def plain_mask(mask: Callable[..., torch.Tensor], x: torch.Tensor, params: dict) -> torch.Tensor:
    """``mask(x, **params)`` outside any graph."""
    with torch.no_grad():
        return mask(x, **params)


# How BoundRule.residual computes a mask rule's mask: fn(mask, x, params), a bool tensor shaped
# like x, value for value mask(x, **params). Looked up at each call; set_compute_mask sets it.
compute_mask: MaskComputer = plain_mask


def set_compute_mask(fn: MaskComputer) -> None:
    """Compute mask rules' masks with ``fn(mask, x, params)`` from now on (freegrad's package
    root sets :func:`freegrad.kernels.compute_mask`)."""
    global compute_mask
    compute_mask = fn


def _rule_parameters(fn: Callable) -> tuple[dict[str, Any], bool]:
    """(name -> default, accepts_any) for the params after ctx, grad_out, input."""
    params = list(inspect.signature(fn).parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) < 3 and not any(p.kind == p.VAR_POSITIONAL for p in params):
        raise TypeError(
            f"a rule must have the signature fn(ctx, grad_out, input, **params); "
            f"{getattr(fn, '__name__', fn)!r} takes {[p.name for p in params]}"
        )
    rest = params[3:]
    defaults = {
        p.name: p.default for p in rest if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    return defaults, any(p.kind == p.VAR_KEYWORD for p in rest)


def _check_value_types(rule: str, params: Mapping[str, Any], defaults: Mapping[str, Any]) -> None:
    """Numbers must be finite real numbers; options must keep their default's type."""
    for key, value in params.items():
        if is_schedule(value):
            raise TypeError(
                f"rule {rule!r}: parameter {key}={value!r} is a schedule, which has a value "
                f"only at a step: give it to fg.use(rule, params), whose forwards bind it"
            )
        default = defaults.get(key, _EMPTY)
        numeric_default = isinstance(default, numbers.Real) and not isinstance(default, bool)
        if numeric_default and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
            raise TypeError(f"rule {rule!r}: parameter {key}={value!r} must be a real number")
        if isinstance(default, (bool, str)) and type(value) is not type(default):
            raise TypeError(
                f"rule {rule!r}: parameter {key}={value!r} must be a {type(default).__name__}"
            )
        if isinstance(value, numbers.Real) and not math.isfinite(value):
            raise ValueError(f"rule {rule!r}: parameter {key}={value!r} must be finite")


class _Callable:
    """Rules and composites are called like the published rule functions."""

    def __call__(self, ctx, grad_out: torch.Tensor, input: torch.Tensor | None, **params):
        bound = self.bind(params)
        return bound.backward(ctx, grad_out, bound.residual(input))


class Rule(_Callable):
    """A named backward rule; call it as ``rule(ctx, grad_out, input, **params)``.

    ``saves=None`` (not declared): "mask" if a ``mask`` is given, else the input is kept
    when there is one and the rule receives ``input=None`` otherwise (parameter gradients),
    as in freegrad 1.0.1.
    """

    def __init__(
        self,
        name: str,
        fn: Callable,
        *,
        saves: str | Callable[[dict], str] | None = None,
        mask: Callable[..., torch.Tensor] | None = None,
        check: Callable[..., None] | None = None,
        formula: str | None = None,
        source: str | None = None,
        stochastic: bool = False,
        edges: Edges | None = None,
        primitive: Primitive | None = None,
    ):
        if saves is None and mask is not None:
            saves = "mask"  # a mask declares its need
        if saves is not None and not callable(saves) and saves not in SAVES:
            raise ValueError(f"saves={saves!r} is not one of {SAVES}")
        if saves == "mask" and mask is None:
            raise ValueError(f"rule {name!r} saves a mask but no mask function was given")
        self.name = name
        self.fn = fn
        self.input_optional = saves is None  # None on parameter gradients is the rule's business
        self.saves = "input" if saves is None else saves
        self.mask = mask
        self.check = check
        self.defaults, self.accepts_any = _rule_parameters(fn)
        doc = inspect.getdoc(fn) or ""
        self.formula = formula or (doc.splitlines()[0] if doc else "(not documented)")
        self.source = source or "user rule"
        self.stochastic = stochastic  # draws random numbers (from ctx.generator, see use(seed=))
        self.edges = edges  # its backward at the ends, ±0, ±inf and NaN (freegrad.edges)
        self.primitive = primitive  # what makes its params learnable (freegrad.primitive)
        unknown = sorted(set(primitive.grads) - set(self.defaults)) if primitive else []
        if unknown:
            raise TypeError(f"rule {name!r}: the primitive's grads name {unknown}, which are "
                            f"not its parameters {sorted(self.defaults)}")
        self.__doc__ = doc

    @property
    def learnable(self) -> tuple[str, ...]:
        """The parameters ``fg.learnable`` can make per-layer ``nn.Parameter``s."""
        return tuple(self.primitive.grads) if self.primitive is not None else ()

    def __repr__(self) -> str:
        return f"Rule({self.name!r})"

    def renamed(self, name: str) -> Rule:
        return Rule(
            name, self.fn, saves=None if self.input_optional else self.saves, mask=self.mask,
            check=self.check, formula=self.formula, source=self.source, stochastic=self.stochastic,
            edges=self.edges, primitive=self.primitive,
        )

    def resolve(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Defaults filled in and every name and value checked, or a clear error."""
        params = dict(params or {})
        if not self.accepts_any:
            unknown = sorted(set(params) - set(self.defaults))
            if unknown:
                accepted = sorted(self.defaults) or "no parameters"
                raise TypeError(
                    f"rule {self.name!r} got unknown parameter(s) {unknown}; it accepts {accepted}"
                )
        missing = [k for k, v in self.defaults.items() if v is _EMPTY and k not in params]
        if missing:
            raise TypeError(f"rule {self.name!r} needs parameter(s) {missing}")
        resolved = {k: v for k, v in self.defaults.items() if v is not _EMPTY} | params
        _check_value_types(self.name, resolved, self.defaults)
        if self.check is not None:
            self.check(**resolved)
        return resolved

    def bind(self, params: Mapping[str, Any] | None = None) -> BoundRule:
        return BoundRule(self, self.resolve(params))


class BoundRule:
    """A rule with checked params: what to keep at forward, what to do at backward."""

    def __init__(self, rule: Rule, params: dict[str, Any]):
        self.rule = rule
        self.name = rule.name
        self.params = params
        self.saves = rule.saves(params) if callable(rule.saves) else rule.saves
        self.input_optional = rule.input_optional

    n_residuals = 1

    @property
    def needs_input(self) -> bool:
        """Whether the rule cannot run without the input (it declared a mask or the input)."""
        return self.saves != "nothing" and not self.input_optional

    def residual(self, input: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        """What backward needs, computed when the forward runs (``input=None``: no input)."""
        if self.saves == "nothing" or (input is None and self.input_optional):
            return (None,)
        if input is None:
            raise ValueError(
                f"rule {self.name!r} needs the activation input (it saves {self.saves!r}), "
                f"so it cannot act on parameter gradients or be called with input=None; "
                f"use scope='activations' for it"
            )
        if self.saves == "mask":
            return (compute_mask(self.rule.mask, input, self.params),)
        return (input,)

    def backward(self, ctx, grad_out: torch.Tensor, residual: tuple) -> torch.Tensor:
        return self.rule.fn(ctx, grad_out, residual[0], **self.params)


class Composite(_Callable):
    """Rules applied in series: the output of each is the grad_out of the next.

    Params given when the composite is used go to every part whose signature
    accepts them; params fixed per part (``(rule, params)`` pairs) always win.
    """

    def __init__(
        self, parts: list[tuple[Rule | Composite, dict[str, Any]]], name: str | None = None
    ):
        self.parts = parts
        self.name = name or "compose(" + ", ".join(rule.name for rule, _ in parts) + ")"
        self.defaults = {}
        for rule, _ in parts:
            self.defaults.update(rule.defaults)
        self.accepts_any = any(rule.accepts_any for rule, _ in parts)
        self.stochastic = any(rule.stochastic for rule, _ in parts)
        self.formula = " ∘ ".join(f"[{rule.name}]" for rule, _ in reversed(parts))
        self.source = "composition"
        self.edges = None  # a composition states no edges of its own

    def __repr__(self) -> str:
        return f"Composite({self.name!r})"

    def renamed(self, name: str) -> Composite:
        return Composite(self.parts, name)

    def bind(self, params: Mapping[str, Any] | None = None) -> BoundComposite:
        params = dict(params or {})
        unused = sorted(k for k in params if not self.accepts_any and k not in self.defaults)
        if unused:
            raise TypeError(
                f"rule {self.name!r} got unknown parameter(s) {unused}; "
                f"its parts accept {sorted(self.defaults)}"
            )
        bound = []
        for rule, fixed in self.parts:
            routed = {k: v for k, v in params.items() if rule.accepts_any or k in rule.defaults}
            bound.append(rule.bind(routed | fixed))
        return BoundComposite(self.name, bound)


class BoundComposite:
    def __init__(self, name: str, parts: list[BoundRule | BoundComposite]):
        self.name = name
        self.parts = parts
        kinds = {p.saves for p in parts}
        self.saves = next(s for s in reversed(SAVES) if s in kinds)
        self.n_residuals = sum(p.n_residuals for p in parts)

    @property
    def needs_input(self) -> bool:
        return any(p.needs_input for p in self.parts)

    def residual(self, input):
        return tuple(r for part in self.parts for r in part.residual(input))

    def backward(self, ctx, grad_out, residual):
        start = 0
        for part in self.parts:
            grad_out = part.backward(ctx, grad_out, residual[start:start + part.n_residuals])
            start += part.n_residuals
        return grad_out


AnyRule = Rule | Composite
