"""The learning-rate sensitivity figure of an experiment's search (``reports/runs/<name>.json``,
``tuning``): validation accuracy (%) against the learning rate, one line per arm, the rate each
arm's search chose marked with a star and a diverged candidate with a cross at its chance
level.  It shows at a glance whether a rule trains as well as its reference when each gets its
best step.  Arms are grouped into panels of a few lines by their grid axes
(``figures.line_panels``)."""

from __future__ import annotations

import math
import textwrap

import matplotlib.pyplot as plt


def _draw_arm(ax, arm: dict, name: str, color) -> None:
    lrs = [c["lr"] for c in arm["candidates"]]
    acc = [100 * c["val_acc"] for c in arm["candidates"]]
    ax.plot(lrs, acc, marker="o", ms=3, lw=1.2, color=color, label=name)
    for c in arm["candidates"]:
        if c["diverged"]:
            ax.plot(c["lr"], 100 * c["val_acc"], marker="x", ms=7, color=color)
    best = next(c for c in arm["candidates"] if c["lr"] == arm["chosen_lr"])
    ax.plot(best["lr"], 100 * best["val_acc"], marker="*", ms=11, color=color, mec="black",
            mew=0.5)


def plot_search(details: dict, configs: dict, title: str, line_panels):
    """The figure of one experiment's search; ``configs``: its configurations (their axes
    group the arms into panels)."""
    arms = details["tuning"]["arms"]
    names = list(arms)
    panels = line_panels(names, {n: configs.get(n, {}).get("axes", {}) for n in names})
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(5.0, 3.0 * ncols), 2.9 * nrows),
                             squeeze=False, sharey=True, layout="constrained")
    colors = plt.get_cmap("tab10").colors
    for ax, (head, members) in zip(axes.flat, panels, strict=False):
        for i, name in enumerate(members):
            _draw_arm(ax, arms[name], name, colors[i % len(colors)])
        ax.set_xscale("log")
        ax.set_title("\n".join(textwrap.wrap(head, 34)), fontsize=9)
        ax.set_xlabel("learning rate", fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7.5)
        ax.legend(fontsize=7, frameon=False, loc="best")
    for ax in axes[:, 0]:
        ax.set_ylabel("validation accuracy (%)", fontsize=8)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    t = details["tuning"]
    fig.suptitle(f"{title}\nlearning-rate search: {t['epochs']} epochs, "
                 f"{len(t['seeds'])} seed(s); star: chosen, cross: diverged", fontsize=9)
    return fig
