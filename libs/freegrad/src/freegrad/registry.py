"""The registry of named rules (``register``, ``get``, ``unregister``, ``names``) and
``compose``.

Rules themselves - :class:`~freegrad.rules.Rule`, its bound form, composites - live in
:mod:`freegrad.rules`; their names are importable from here as well, as before.
``blend(rule, mix)`` (:mod:`freegrad.blend`) mixes a rule with the true derivative; the name
``"blend(<rule>)"`` gets one too, its ``mix`` given to ``use``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any

import torch

from .blend import Blend
from .edges import Edges
from .primitive import Primitive
from .rules import SAVES, AnyRule, BoundComposite, BoundRule, Composite, Rule

__all__ = [
    "SAVES",
    "AnyRule",
    "BoundComposite",
    "BoundRule",
    "Composite",
    "Rule",
    "RuleError",
    "blend",
    "compose",
    "get",
    "names",
    "register",
    "unregister",
]


class RuleError(KeyError):
    """An unknown or duplicate rule name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


_RULES: dict[str, Rule] = {}


def register(
    name: str,
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
    """Decorator registering ``fn(ctx, grad_out, input, **params)`` (or a composite) as ``name``.

    A name can be registered once; a second registration raises :class:`RuleError`.
    ``saves`` is "nothing", "mask" (implied by ``mask=``) or "input"; left out, the input is
    kept when there is one and the rule receives ``input=None`` on parameter gradients (the
    published contract), while a declared mask or "input" makes that an error.
    ``stochastic=True`` marks a rule that draws random numbers; ``edges`` states its backward
    at the ends of its interval, ±0, ±inf and NaN (:class:`~freegrad.edges.Edges`, on the card);
    ``primitive`` its P(x) = ∫₀ˣ rule and ∂P/∂θ, which make θ learnable
    (:class:`~freegrad.primitive.Primitive`, :func:`freegrad.learnable`).
    Returns the :class:`Rule`, which is called like the function.
    """

    def decorate(fn: Callable | AnyRule) -> AnyRule:
        if name in _RULES:
            raise RuleError(f"rule {name!r} is already registered")
        if isinstance(fn, (Rule, Composite, Blend)):
            rule = fn.renamed(name)
        else:
            rule = Rule(name, fn, saves=saves, mask=mask, check=check, formula=formula,
                        source=source, stochastic=stochastic, edges=edges, primitive=primitive)
        _RULES[name] = rule
        return rule

    return decorate


def get(rule: str | Callable | AnyRule) -> AnyRule:
    """The rule registered under a name, or the given rule/callable as a :class:`Rule`.

    An unknown name is a :class:`RuleError` naming it once, with close names if any:
    ``unknown rule 'rectangulr'; did you mean ['rectangular', ...]? Registered rules: [...]``.
    ``"blend(<rule>)"`` is :func:`blend` of that rule (unless registered under that name).
    """
    if isinstance(rule, (Rule, Composite, Blend)):
        return rule
    if isinstance(rule, str):
        try:
            return _RULES[rule]
        except KeyError:
            if rule.startswith("blend(") and rule.endswith(")"):
                return blend(rule[len("blend("):-1])
            close = difflib.get_close_matches(rule, list(_RULES), n=3, cutoff=0.5)
            hint = f"; did you mean {close}?" if close else "."
            raise RuleError(
                f"unknown rule {rule!r}{hint} Registered rules: {sorted(_RULES)}"
            ) from None
    if callable(rule):
        return Rule(getattr(rule, "__name__", repr(rule)), rule)
    raise TypeError(f"a rule is a registered name or a callable, not {type(rule).__name__}")


def unregister(name: str) -> AnyRule:
    """Remove a registered rule (to redefine it in a notebook, say); returns it."""
    get(name)  # unknown name: RuleError with suggestions
    return _RULES.pop(name)


def names(scope: str | None = None) -> list[str]:
    """Names of the registered rules, sorted: all of them, or those acting in ``scope``:
    "feedback" (the layer feedback rules), "activations" or "params" (the gradient rules)."""
    if scope is None:
        return sorted(_RULES)
    if scope not in ("activations", "params", "feedback"):
        raise ValueError(f"names(scope={scope!r}): scope is 'activations', 'params', "
                         f"'feedback' or None (every rule)")
    feedback = scope == "feedback"
    return sorted(n for n, r in _RULES.items()
                  if bool(getattr(r, "layer_feedback", False)) == feedback)


def compose(*rules: str | Callable | AnyRule | tuple[Any, Mapping[str, Any]]) -> Composite:
    """Rules in series, first applied first: ``compose("clip_norm", "noise")``.

    Each item is a rule (name, callable or rule) or a ``(rule, params)`` pair
    fixing that part's params:
    ``compose(("clip_norm", {"max_norm": 1.0}), ("noise", {"sigma": 0.1}))``.
    """
    if not rules:
        raise ValueError("compose needs at least one rule")
    parts = []
    for item in rules:
        rule, fixed = item if isinstance(item, tuple) else (item, {})
        rule = get(rule)
        rule.bind(fixed)  # a wrong fixed param fails here, not at backward
        parts.append((rule, dict(fixed)))
    return Composite(parts)


def _true_derivative(forward: str) -> Rule:
    return get(f"d({forward})")


def blend(rule: str | Callable | AnyRule, mix: float | Any = None) -> Blend:
    """``mix · rule + (1 − mix) · true derivative`` (α = ``mix``, 0 ≤ α ≤ 1):

    for an activation y = F(x), ``α · rule(g, x) + (1 − α) · g · F'(x)``, ``F'`` the
    ``d(F)`` rule of the layer's forward and parameters; on parameter gradients
    ``α · rule(g) + (1 − α) · g``. ``mix`` may be a number or a schedule
    (:mod:`freegrad.schedules`), or left out and given to ``use`` (``params={"mix": ...}``).
    """
    return Blend(get(rule), mix, _true_derivative)
