"""The formula card: every registered rule's name, formula, parameters and source.

``python -m freegrad.cards docs/rules.md`` regenerates ``docs/rules.md`` from the
registry, so the card cannot drift from the code (a test compares them).
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

from . import registry
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
    if not callable(rule.saves):
        return rule.saves
    doc = inspect.getdoc(rule.saves) if inspect.isfunction(rule.saves) else None
    return doc.splitlines()[0] if doc else "depends on the parameters"


def render() -> str:
    rows = []
    for name in registry.names():
        rule = registry.get(name)
        cells = [f"`{name}`", rule.formula, _params(rule), _saves(rule),
                 "yes" if rule.stochastic else "no", rule.source]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return HEADER + "\n".join(rows) + "\n"


def main(argv: list[str]) -> None:
    text = render()
    if argv:
        Path(argv[0]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    import freegrad  # noqa: F401  (registers the built-in rules)

    main(sys.argv[1:])
