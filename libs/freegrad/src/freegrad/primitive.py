"""``Primitive``: what makes a rule's parameter learnable.

A rule r_θ(x) (its backward for g = 1) has a primitive, the smooth forward whose derivative it
is: P_θ(x) = ∫₀ˣ r_θ(s) ds, fixed by P_θ(0) = 0 (the rules are centred on 0, so the value at
the centre does not move with θ). A learnable parameter θ (``fg.learnable``) gets the gradient
the loss would have if the layer's forward were P_θ:

    ∂L/∂θ = Σ_elements g · ∂P_θ(x)/∂θ

while x keeps the rule's gradient g · r_θ(x) = g · ∂P_θ(x)/∂x. The forward F itself does not
depend on θ, so this is a choice, stated; it is SpikingJelly's (whose surrogates carry their
primitive, the smooth forward a network warms up with) and, for the normalised spiking
surrogates (their P_θ(+∞) − P_θ(−∞) = 1 whatever θ is), the same as anchoring P at −∞.
A rule declares it with ``register(..., primitive=Primitive(value, formula, grads))``.
Part of the rule API: imports nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

Fn = Callable[..., object]  # (x, **params) -> tensor shaped like x


@dataclass(frozen=True)
class Primitive:
    """P_θ(x) = ∫₀ˣ r_θ(s) ds of a rule r, and ∂P_θ(x)/∂θ for each learnable parameter θ.

    ``value(x, **params)`` is P; ``grads`` maps a parameter's name to ``(fn, formula)``, where
    ``fn(x, **params)`` is ∂P/∂θ elementwise (params may be 0-d tensors) and ``formula`` its
    text for the rule card, as ``formula`` is P's.
    """

    value: Fn
    formula: str
    grads: Mapping[str, tuple[Fn, str]] = field(default_factory=dict)

    def __post_init__(self):
        for name, entry in self.grads.items():
            if not (isinstance(entry, tuple) and len(entry) == 2 and callable(entry[0])):
                raise TypeError(f"Primitive: grads[{name!r}] must be (fn, formula), "
                                f"not {entry!r}")
