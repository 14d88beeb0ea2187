"""The ``activations`` figure: every forward and backward rule the experiments' configurations
use, computed by freegrad itself (``fg.FORWARDS``, ``fg.get(rule)``), one panel per rule
family (``family``), each line its own colour and line style, and lines drawn first wider, so
a line that coincides with a later one shows around it (ReLU under Linear and Heaviside).  A
stochastic rule is drawn as the median and the 10-90 % band over ``DRAWS`` draws."""

from __future__ import annotations

import matplotlib.pyplot as plt

from experiments.analysis.grid_figures import axis_label

DRAWS = 4000
# (line style, width): drawn in this order, the first widest
STYLES = [("-", 3.4), ("--", 2.6), (":", 2.4), ("-.", 1.8), ((0, (5, 1, 1, 1, 1, 1)), 1.5),
          ((0, (1, 1)), 1.3), ((0, (8, 2)), 1.1), ((0, (3, 2, 1, 2)), 0.9)]
FAMILIES = ("true derivative d(F)", "surrogate derivative", "noise (stochastic)",
            "jamming (stochastic)", "jamming readings (stochastic)")


def rules_used(specs: dict) -> tuple[list[str], list[tuple[str, dict]]]:
    """The forwards and the (rule, rule_params) the experiments' configurations use."""
    forwards, rules = {}, {}
    for spec in specs.values():
        for cfg in spec["configs"].values():
            forwards[cfg["forward"]] = None
            if "feedback" in cfg.get("scope", ""):  # a layer's feedback matrix: no curve
                continue
            key = (cfg["backward"], tuple(sorted(cfg["rule_params"].items())))
            rules.setdefault(key, (cfg["backward"], dict(cfg["rule_params"])))
    return list(forwards), list(rules.values())


def family(rule: str, prm: dict, stochastic: bool) -> str:
    """The panel of a rule: a forward's own derivative, a deterministic surrogate, noise, or
    jamming (the readings with a ``mode`` or ``test`` in a panel of their own)."""
    if rule.startswith("d("):
        return FAMILIES[0]
    if not stochastic:
        return FAMILIES[1]
    if "jam" not in rule:
        return FAMILIES[2]
    return FAMILIES[4] if {"mode", "test"} & set(prm) else FAMILIES[3]


def _style(i: int) -> dict:
    ls, lw = STYLES[i % len(STYLES)]
    return {"color": plt.get_cmap("tab10").colors[i % 10], "ls": ls, "lw": lw}


def _rule_line(ax, i: int, rule: str, prm: dict, x, g) -> None:
    import freegrad as fg
    import torch

    shown = ", ".join(f"{k}={axis_label(v)}" for k, v in prm.items())
    label = rule + (f"({shown})" if prm else "")
    style = _style(i)
    if not fg.get(rule).stochastic:
        ax.plot(x, fg.get(rule)(None, g, x, **prm), label=label, **style)
        return
    draws = torch.stack([fg.get(rule)(None, g, x, **prm) for _ in range(DRAWS)])
    lo, mid, hi = torch.quantile(draws, torch.tensor([0.1, 0.5, 0.9]), dim=0)
    ax.fill_between(x, lo, hi, color=style["color"], alpha=0.06, lw=0)
    ax.plot(x, mid, label=label, **style)
    for edge in (lo, hi):  # the band's edges: bands of one panel overlap
        ax.plot(x, edge, **{**style, "lw": 0.6 * style["lw"]})


def _finish(ax, title: str) -> None:
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("x (activation input)", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.16),
              ncol=1)


def plot_activations(specs: dict):
    """Forwards, and each rule applied to g = 1 (the 'derivative'), one panel per family."""
    import freegrad as fg
    import torch

    forwards, rules = rules_used(specs)
    by_family: dict = {}
    for rule, prm in rules:
        by_family.setdefault(family(rule, prm, fg.get(rule).stochastic), []).append((rule, prm))
    shown = [f for f in FAMILIES if f in by_family]
    ncols = min(3, 1 + len(shown))
    nrows = -(-(1 + len(shown)) // ncols)
    fig, grid = plt.subplots(nrows, ncols, figsize=(2.5 * ncols, 3.6 * nrows), squeeze=False,
                             constrained_layout=True)
    axes = grid.flat
    for ax in axes[1 + len(shown):]:
        ax.set_visible(False)
    x = torch.linspace(-6, 6, 241)
    g = torch.ones_like(x)
    for i, name in enumerate(forwards):
        axes[0].plot(x, fg.FORWARDS[name].fn(x), label=name, **_style(i))
    axes[0].set_ylim(-1.5, 2.5)
    _finish(axes[0], "forward F(x)")
    torch.manual_seed(0)  # the stochastic rules draw from the global RNG here
    for ax, fam in zip(axes[1:1 + len(shown)], shown, strict=True):
        for i, (rule, prm) in enumerate(by_family[fam]):
            _rule_line(ax, i, rule, prm, x, g)
        _finish(ax, fam)
    fig.suptitle("backward: each rule applied to g = 1 (the 'derivative')\nstochastic rules: "
                 f"median (bold) and 10-90 % band (thin) over {DRAWS} draws", fontsize=9)
    return fig
