"""The ``use`` context manager and the bindings it puts in force.

Bindings live in a :class:`contextvars.ContextVar`, so each thread (and each
asyncio task) sees only the ``use`` blocks it entered itself. A layer reads
the binding when its *forward* runs and keeps it with the autograd node, so
the backward applies that rule wherever and whenever it runs.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from .registry import AnyRule, BoundComposite, BoundRule, get
from .targeting import as_layers

SCOPES = ("activations", "params")
_SCOPE_WORDS = ("all",) + SCOPES

_BINDINGS: contextvars.ContextVar[tuple[Binding, ...]] = contextvars.ContextVar(
    "freegrad_bindings", default=()
)


def parse_scope(scope: str | Iterable[str]) -> frozenset[str]:
    words = (scope,) if isinstance(scope, str) else tuple(scope)
    bad = [w for w in words if w not in _SCOPE_WORDS]
    if bad or not words:
        raise ValueError(f"unknown scope {bad or words!r}; valid scopes are {list(_SCOPE_WORDS)}")
    return frozenset(SCOPES if "all" in words else words)


@dataclass(eq=False)
class Binding:
    """A rule with checked params, the scopes it covers and its random source."""

    bound: BoundRule | BoundComposite | None  # None: the true derivative (``exact``)
    scopes: frozenset[str]
    layers: frozenset | None = None  # None: every layer
    seed: int | None = None
    generator: torch.Generator | None = None
    _seeded: dict[torch.device, torch.Generator] = field(default_factory=dict)

    def generator_for(self, device: torch.device) -> torch.Generator | None:
        """The generator stochastic rules draw from on ``device`` (None: torch's global RNG)."""
        if self.generator is not None:
            if self.generator.device.type != device.type:
                raise ValueError(
                    f"rule {self.bound.name!r}: the generator is on {self.generator.device}, "
                    f"the gradient on {device}; pass seed= or a generator on {device}"
                )
            return self.generator
        if self.seed is None:
            return None
        if device not in self._seeded:
            self._seeded[device] = torch.Generator(device=device).manual_seed(self.seed)
        return self._seeded[device]


@dataclass(frozen=True)
class RuleContext:
    """The ``ctx`` a rule receives: which rule runs where, and its random source."""

    rule: str
    scope: str
    forward: str | None
    generator: torch.Generator | None


def current(scope: str, module: Any = None) -> Binding | None:
    """The innermost binding in force for ``scope`` ("activations" or "params") and ``module``.

    A binding limited to some layers covers only those modules (not functional calls).
    """
    for binding in reversed(_BINDINGS.get()):
        if scope in binding.scopes and (binding.layers is None or module in binding.layers):
            return binding if binding.bound is not None else None
    return None


class use:
    """Apply ``rule`` to the backward of everything whose forward runs inside the block.

    Args:
        rule: a registered name (``"rectangular"``), a :class:`~freegrad.registry.Rule`,
            a composite, or a plain ``fn(ctx, grad_out, input, **params)``.
        params: the rule's parameters; checked against its signature on creation.
        scope: ``"all"``, ``"activations"``, ``"params"``, or a tuple of them.
        seed: makes stochastic rules (noise, jamming) draw from a generator seeded
            with it, so gradients repeat run after run.
        generator: a ``torch.Generator`` to draw from instead (save its
            ``get_state()`` with a checkpoint to resume the stream).
        layers: limit the rule to some layers: ``fg.select(model, "features.*")``,
            a module, or modules (with their submodules).

    Nested blocks: the innermost block covering a scope wins.
    """

    def __init__(
        self,
        rule: str | AnyRule | Any,
        params: Mapping[str, Any] | None = None,
        scope: str | Iterable[str] = "all",
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        layers: Any = None,
    ):
        if seed is not None and generator is not None:
            raise ValueError("pass seed or generator, not both")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be an int, not {seed!r}")
        self.rule = get(rule)
        self.bound = self.rule.bind(params)
        self.scopes = parse_scope(scope)
        self.layers = as_layers(layers)
        self.seed = seed
        self.generator = generator
        self._tokens: list[contextvars.Token] = []

    def _binding(self) -> Binding:
        return Binding(self.bound, self.scopes, self.layers, self.seed, self.generator)

    def __enter__(self) -> use:
        self._tokens.append(_BINDINGS.set(_BINDINGS.get() + (self._binding(),)))
        return self

    def __exit__(self, *exc) -> bool:
        _BINDINGS.reset(self._tokens.pop())
        return False


class exact(use):
    """True derivatives inside the block, whatever rule an outer block put in force.

    ``with fg.exact(): ...`` (or ``scope=``/``layers=`` to clear only part of it)
    is how a rule-trained model is measured against its true gradient.
    """

    def __init__(self, scope: str | Iterable[str] = "all", *, layers: Any = None):
        self.bound = None
        self.scopes = parse_scope(scope)
        self.layers = as_layers(layers)
        self.seed = self.generator = None
        self._tokens = []


def _generator(ctx: RuleContext | None) -> torch.Generator | None:
    return getattr(ctx, "generator", None)


def uniform_like(ctx: RuleContext | None, t: torch.Tensor) -> torch.Tensor:
    """U[0, 1) noise shaped like ``t``, from the rule's generator (or torch's global RNG)."""
    return torch.rand(t.shape, generator=_generator(ctx), dtype=t.dtype, device=t.device)


def normal_like(ctx: RuleContext | None, t: torch.Tensor) -> torch.Tensor:
    """N(0, 1) noise shaped like ``t``, from the rule's generator (or torch's global RNG)."""
    return torch.randn(t.shape, generator=_generator(ctx), dtype=t.dtype, device=t.device)
