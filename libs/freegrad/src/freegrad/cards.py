"""The formula card: every registered rule's name, formula, parameters and source.

``python -m freegrad.cards docs/rules.md`` regenerates ``docs/rules.md`` from the
registry, so the card cannot drift from the code (a test compares them).
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

from . import registry
from .edges import GRAD, GRAD_NOTE, describe
from .rules import Rule

HEADER = """# FreeGrad rule card

Generated from the rule registry by `python -m freegrad.cards docs/rules.md`; do not edit.
Notation: g is the incoming gradient (grad_out), x the activation's forward input,
σ the logistic function, 1[·] an indicator. "Saves" is what the rule keeps from the
forward pass for its backward: nothing, a one-byte mask, or the input; only rules that save
nothing act on parameter gradients (scope="params"), the others need the activation input and
are refused there. "Random" rules draw noise (seed them with `use(..., seed=N)`).

| rule | formula | parameters (defaults) | saves | random | source |
|---|---|---|---|---|---|
"""


def _params(rule: Rule) -> str:
    shown = [
        f"`{k}={v!r}`" if v is not inspect.Parameter.empty else f"`{k}` (required)"
        for k, v in rule.defaults.items()
    ]
    return ", ".join(shown) or "-"


def _saves(rule: Rule) -> str:
    """What the rule keeps; a ``saves`` function says it in its docstring's first line (the
    jamming rules': which ``test`` keeps a mask), else it depends on the parameters."""
    saves = getattr(rule, "saves", None)
    if saves is None:  # a composite or a blend: what its parts keep
        return "as its parts"
    if not callable(saves):
        return saves
    doc = inspect.getdoc(saves) if inspect.isfunction(saves) else None
    return doc.splitlines()[0] if doc else "depends on the parameters"


EDGES_HEADER = f"""
## Edges

Each rule's backward at the edges of x, for g = 1 and the parameters' defaults: at the ends of
its interval (where it has one; an end's value says whether the end belongs to it), at −0 and
+0 (one value for both), at −inf, +inf and NaN; "u" is a jamming rule's draw u ~ U[0, 1) there.
"x not read": the backward is the same at every x. The last column is what a NaN or infinite
incoming gradient g gives; {GRAD_NOTE} The tests pin every cell in float16, bfloat16, float32
and float64, on the compiled kernels and on the PyTorch ops, and check the rules freegrad 1.0.1
also has against it; the guide says where and why we differ from it.

| rule | at the ends | ±0 | −inf | +inf | NaN | NaN or ±inf in g |
|---|---|---|---|---|---|---|
"""


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _edges(name: str, rule: Rule) -> list[str]:
    """The rule's row of the edges table."""
    edges = rule.edges
    if edges is None:
        return [f"`{name}`", "not stated", "", "", "", "", ""]  # a user rule may state none
    grad = GRAD[edges.grad]
    if not edges.reads_x:
        return [f"`{name}`", "x not read", "–", "–", "–", "–", grad]
    defaults = {k: v for k, v in rule.defaults.items() if v is not inspect.Parameter.empty}
    ends = "; ".join(
        f"{label.replace('-', '−')} = {describe(x)}: {describe(v)}" if isinstance(label, str)
        and label.lstrip("-") in defaults else f"{describe(x)}: {describe(v)}"
        for (label, x), v in zip(edges.end_points(defaults), edges.at_ends, strict=True)
    )
    values = [edges.zero, edges.neg_inf, edges.pos_inf, edges.nan]
    return [f"`{name}`", ends or "no interval", *map(describe, values), grad]


LEARNABLE_HEADER = """
## Learnable parameters

The parameters that `fg.learnable(model, rule, param, init)` can make an `nn.Parameter` of
each layer, kept positive as θ = max(softplus(ρ), tiny) of a raw ρ. The layer's input gets
the rule at θ;
θ gets the gradient it would have if the layer's forward were the rule's primitive
P(x) = ∫₀ˣ rule(s) ds (P(0) = 0): ∂L/∂θ = Σ g · ∂P(x)/∂θ over the layer's elements. At
x = ±inf ∂P/∂θ is its limit, at NaN it is NaN (0 for `straight_through`, a window).

| rule | parameter | P(x) = ∫₀ˣ rule | ∂P/∂θ |
|---|---|---|---|
"""


def _learnable(name: str, rule: Rule) -> list[str]:
    """The rule's rows of the learnable-parameters table (none for most rules)."""
    primitive = getattr(rule, "primitive", None)
    if primitive is None:
        return []
    return [_row([f"`{name}`", f"`{param}`", primitive.formula, formula])
            for param, (_, formula) in primitive.grads.items()]


FEEDBACK_HEADER = """
## Layer feedback rules

Rules for `scope="feedback"`: an `nn.Linear` or `nn.Conv2d` layer (made a feedback layer by
`fg.convert(model, feedback=True)`) keeps its forward y = x Wᵀ + b (conv2d(x, W, b)) and its
true weight and bias gradients, and passes g B (conv_transpose2d(g, B)) to its input instead of
g W. R is drawn like the layer's initialisation `init`: "kaiming" U(±1/√fan_in) (PyTorch's
default), "xavier" U(±√(6/(fan_in + fan_out))) (biotorch's); s = that distribution's standard
deviation. "Draws R": never, once per layer (then fixed), or at every forward (every batch),
from `use(..., seed=N)`'s generator.

| rule | feedback matrix B | parameters (defaults) | draws R | source |
|---|---|---|---|---|
"""


def _feedback(name: str, rule) -> list[str]:
    draws = {"none": "never", "fixed": "once per layer", "batch": "every batch"}[rule.draws]
    return [f"`{name}`", rule.formula, _params(rule), draws, rule.source]


def render() -> str:
    rows, edge_rows, learnable_rows = [], [], []
    feedback_rows = [_row(_feedback(n, registry.get(n))) for n in registry.names("feedback")]
    for name in registry.names("activations"):
        rule = registry.get(name)
        rows.append(_row([f"`{name}`", rule.formula, _params(rule), _saves(rule),
                          "yes" if rule.stochastic else "no", rule.source]))
        edge_rows.append(_row(_edges(name, rule)))
        learnable_rows += _learnable(name, rule)
    return (HEADER + "\n".join(rows) + "\n" + EDGES_HEADER + "\n".join(edge_rows) + "\n"
            + LEARNABLE_HEADER + "\n".join(learnable_rows) + "\n"
            + FEEDBACK_HEADER + "\n".join(feedback_rows) + "\n")


def main(argv: list[str]) -> None:
    text = render()
    if argv:
        Path(argv[0]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    import freegrad  # noqa: F401  (registers the built-in rules)

    main(sys.argv[1:])
