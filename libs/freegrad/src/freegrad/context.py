"""The ``use`` context manager and the bindings it puts in force.

Bindings live in a :class:`contextvars.ContextVar`, so each thread (and each
asyncio task) sees only the ``use`` blocks it entered itself. A layer reads
the binding when its *forward* runs and keeps it with the autograd node, so
the backward applies that rule wherever and whenever it runs.

No silent no-ops: a block whose ``layers=`` hold nothing its scopes act on is an
error at entry, and a block that ends with nothing having taken its rule (no
freegrad activation or parameter hook ran a forward under it) warns.

A parameter may be a schedule of the optimiser step (:mod:`freegrad.schedules`): the
block's :class:`~freegrad.scheduling.Clock` counts the steps, and a forward binds the
schedules' values at the clock's step, as it binds every other parameter.
"""

from __future__ import annotations

import contextvars
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from .registry import get
from .rules import AnyRule, BoundComposite, BoundRule
from .scheduling import Clock, ScheduledParams, numeric_values
from .targeting import as_layers

SCOPES = ("activations", "params")  # what "all" covers in use(): the gradient rules' scopes
FEEDBACK = "feedback"  # Linear and Conv2d layers' feedback matrices (freegrad.feedback)
_SCOPE_WORDS = ("all",) + SCOPES + (FEEDBACK,)

_BINDINGS: contextvars.ContextVar[tuple[Binding, ...]] = contextvars.ContextVar(
    "freegrad_bindings", default=()
)


def parse_scope(scope: str | Iterable[str], all_means: tuple[str, ...] = SCOPES) -> frozenset[str]:
    """The scopes ``scope`` names; "all" stands for ``all_means`` (``exact`` adds "feedback")."""
    words = (scope,) if isinstance(scope, str) else tuple(scope)
    bad = [w for w in words if w not in _SCOPE_WORDS]
    if bad or not words:
        raise ValueError(f"unknown scope {bad or words!r}; valid scopes are {list(_SCOPE_WORDS)}")
    if "all" in words:
        words = all_means + tuple(w for w in words if w != "all")
    return frozenset(words)


def check_rule_scope(rule: Any, scopes: frozenset[str]) -> None:
    """A layer feedback rule acts in scope "feedback" alone, and only it acts there."""
    feedback_rule = bool(getattr(rule, "layer_feedback", False))
    if feedback_rule == (scopes == {FEEDBACK}):
        return
    from .registry import names

    accepted = names(FEEDBACK)
    if feedback_rule:
        raise ValueError(
            f"rule {rule.name!r} is a layer feedback rule (it gives Linear and Conv2d layers "
            f"their feedback matrix), so it takes scope='feedback' alone, not "
            f"{sorted(scopes)}")
    raise ValueError(
        f"scope 'feedback' takes a layer feedback rule, one of {accepted}, alone; "
        f"{rule.name!r} is a gradient rule (scopes {list(SCOPES)})")


@dataclass(eq=False)
class Binding:
    """A rule with checked params, the scopes it covers and its random source."""

    bound: BoundRule | BoundComposite | None  # None: the true derivative (``exact``)
    scopes: frozenset[str]
    layers: frozenset | None = None  # None: every layer
    seed: int | None = None
    generator: torch.Generator | None = None
    _seeded: dict[torch.device, torch.Generator] = field(default_factory=dict)
    taken: bool = False  # set by current() when a layer or parameter hook binds this rule
    schedule: ScheduledParams | None = None  # None: no parameter is scheduled
    _at: tuple[int, Binding] | None = None  # (step, this binding at that step), see at_step

    def at_step(self) -> Binding:
        """This binding with its schedules' values at the clock's step: what a forward binds
        (one per step, sharing this one's random source)."""
        t = self.schedule.clock.t
        at = self._at
        if at is None or at[0] != t:
            at = self._at = (t, replace(self, bound=self.schedule.bound_at(t),
                                           schedule=None, _at=None))
        return at[1]

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
    """The ``ctx`` a rule receives: which rule runs where, and its random source.

    ``forward_params`` are the activation's forward parameters (``negative_slope`` of a
    LeakyReLU, say: what its true derivative needs); empty where there are none.
    """

    rule: str
    scope: str
    forward: str | None
    generator: torch.Generator | None
    forward_params: Mapping[str, Any] = field(default_factory=dict)


def current(scope: str, module: Any = None) -> Binding | None:
    """The innermost binding in force for ``scope`` ("activations", "params" or "feedback") and
    ``module``.

    A binding limited to some layers covers only those modules (not functional calls).
    Callers bind what this returns, so it marks the binding as taken (one attribute store).
    """
    for binding in reversed(_BINDINGS.get()):
        if scope in binding.scopes and (binding.layers is None or module in binding.layers):
            if binding.bound is None:
                return None
            binding.taken = True
            return binding if binding.schedule is None else binding.at_step()
    return None


def _scope_text(scopes: frozenset[str]) -> str:
    return "'all'" if scopes == frozenset(SCOPES) else repr(next(iter(scopes)))


_WHAT_TAKES = {  # scope -> what takes a rule there, and how to get one
    "activations": "freegrad Activation (convert the model first: fg.convert(model), or call "
                   "freegrad.functional.activation)",
    "params": "module with parameter hooks (call fg.attach_param_hooks(model) first)",
    FEEDBACK: "feedback layer (fg.FeedbackLinear or fg.FeedbackConv2d: convert the model's "
              "nn.Linear and nn.Conv2d first with fg.convert(model, feedback=True))",
}


def _takers(scopes: frozenset[str]) -> str:
    return " or ".join(_WHAT_TAKES[s] for s in sorted(scopes))


# What takes a rule, by scope, says so with a true marker attribute, so this module need not
# import it: fg.Activation (wrappers.py) has the first as a class attribute, and
# attach_param_hooks (hook.py) sets the second on each module it hooks (and removes it).
MARKERS = {"activations": "_freegrad_activation", "params": "_freegrad_param_hooks",
           FEEDBACK: "_freegrad_feedback"}  # feedback_layers.py: FeedbackLinear, FeedbackConv2d


def takes_rules(module: Any, scope: str) -> bool:
    """Whether ``module`` takes the rules of ``scope`` (it carries that scope's marker)."""
    return bool(getattr(module, MARKERS[scope], False))


def _check_layers(block: use) -> None:
    """A layer selection must hold something the block's scopes act on, or it is an error."""
    if any(takes_rules(m, s) for s in block.scopes for m in block.layers):
        return
    names = list(getattr(block.layers, "names", ())) or sorted(
        {type(m).__name__ for m in block.layers})
    raise ValueError(
        f"use({block.bound.name!r}, scope={_scope_text(block.scopes)}, layers=...): the selected "
        f"layers {names[:12]}{' ...' if len(names) > 12 else ''} hold no "
        f"{_takers(block.scopes)}, so the rule would change nothing"
    )


class use:
    """Apply ``rule`` to the backward of everything whose forward runs inside the block.

    Args:
        rule: a registered name (``"rectangular"``), a :class:`~freegrad.rules.Rule`,
            a composite, or a plain ``fn(ctx, grad_out, input, **params)``.
        params: the rule's parameters; checked against its signature on creation. A value
            may be a schedule of the step (``fg.schedules.linear(1.0, 0.25, 1000)``, or its
            dict spec ``{"schedule": "linear", ...}``): each forward binds its value at
            ``clock.t``, checked like any value (an error names the step and the value).
        scope: ``"all"`` (activations and params), ``"activations"``, ``"params"``, or a
            tuple of them; ``"feedback"`` (alone) for a layer feedback rule
            (:mod:`freegrad.feedback`: ``fa``, ``usf``, ``brsf``, ``frsf``).
        seed: makes stochastic rules (noise, jamming) draw from a generator seeded
            with it, so gradients repeat run after run.
        generator: a ``torch.Generator`` to draw from instead (save its
            ``get_state()`` with a checkpoint to resume the stream).
        layers: limit the rule to some layers: ``fg.select(model, "features.*")``,
            a module, or modules (with their submodules).
        clock: the :class:`~freegrad.scheduling.Clock` its schedules read (a new one at
            step 0 if not given); ``block.step()`` advances it, ``block.clock.attach(opt)``
            counts ``opt``'s steps. ``block.values()``: the numeric params in force now.

    Nested blocks: the innermost block covering a scope wins.

    No silent no-ops: ``layers=`` holding nothing the scopes act on (no freegrad
    ``Activation`` for "activations", no module with parameter hooks for "params")
    is a ``ValueError`` at entry; a block that ends normally with no freegrad
    activation or parameter hook having bound its rule (an unconverted model, or
    only a backward inside) emits a ``UserWarning``.
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
        clock: Clock | None = None,
    ):
        if seed is not None and generator is not None:
            raise ValueError("pass seed or generator, not both")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be an int, not {seed!r}")
        self.rule = get(rule)
        self.params = dict(params or {})
        self.clock = Clock() if clock is None else clock
        self.schedule = ScheduledParams.of(self.rule, self.params, self.clock)
        self.bound = (self.rule.bind(self.params) if self.schedule is None
                      else self.schedule.bound_at(self.clock.t))
        self.scopes = parse_scope(scope)
        check_rule_scope(self.rule, self.scopes)
        self.layers = as_layers(layers)
        self.seed = seed
        self.generator = generator
        self._tokens: list[tuple[contextvars.Token, Binding]] = []

    def _binding(self) -> Binding:
        return Binding(self.bound, self.scopes, self.layers, self.seed, self.generator,
                       schedule=self.schedule)

    @property
    def t(self) -> int:
        """The step the block's schedules are at (its clock's)."""
        return self.clock.t

    def step(self, n: int = 1) -> int:
        """Advance the block's clock by ``n`` steps (after ``optimizer.step()``); the new step."""
        return self.clock.step(n)

    def values(self) -> dict[str, float]:
        """The numeric params given to the block, schedules at the current step: what a
        forward binds now (``mlflow.log_metrics(block.values(), step=block.t)``)."""
        if self.schedule is None:
            return numeric_values(self.params)
        return numeric_values(self.params | self.schedule.values_at(self.clock.t))

    def __enter__(self) -> use:
        if self.layers is not None and self.bound is not None:
            _check_layers(self)
        binding = self._binding()
        self._tokens.append((_BINDINGS.set(_BINDINGS.get() + (binding,)), binding))
        return self

    def __exit__(self, exc_type, *exc) -> bool:
        token, binding = self._tokens.pop()
        _BINDINGS.reset(token)
        if exc_type is None and binding.bound is not None and not binding.taken:
            warnings.warn(
                f"use({binding.bound.name!r}, scope={_scope_text(binding.scopes)}) changed "
                f"nothing: no forward inside the block bound its rule (it binds when a "
                f"forward runs with gradients enabled, not at backward). Does the model have a "
                f"{_takers(binding.scopes)}?",
                UserWarning, stacklevel=2,
            )
        return False


class exact(use):
    """True derivatives inside the block, whatever rule an outer block put in force.

    ``with fg.exact(): ...`` (or ``scope=``/``layers=`` to clear only part of it)
    is how a rule-trained model is measured against its true gradient. Its "all" covers the
    layer feedback rules too (``scope="feedback"``): inside, every layer backpropagates.
    """

    def __init__(self, scope: str | Iterable[str] = "all", *, layers: Any = None):
        self.bound = self.schedule = None
        self.params = {}
        self.clock = Clock()
        self.scopes = parse_scope(scope, SCOPES + (FEEDBACK,))
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
