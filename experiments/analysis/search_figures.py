"""The learning-rate sensitivity figure of an experiment's search (``reports/runs/<name>.json``,
``tuning``): validation accuracy (%) against the learning rate, one line per arm, the rate each
arm's search chose marked with a star and a diverged candidate with a cross at its chance
level.  It shows at a glance whether a rule trains as well as its reference when each gets its
best step: each panel holds one reference (black, solid) and the arms compared with it
(``comparisons.baseline_of``, by grid axes; bnn: one panel per d)."""

from __future__ import annotations

import math
import textwrap

import matplotlib.pyplot as plt

from experiments.analysis.comparisons import baseline_of
from experiments.analysis.grid_figures import axis_label

LINESTYLES = ["--", "-.", ":", (0, (5, 1, 1, 1)), (0, (1, 1))]


def _draw_arm(ax, arm: dict, name: str, style: dict) -> None:
    lrs = [c["lr"] for c in arm["candidates"]]
    acc = [100 * c["val_acc"] for c in arm["candidates"]]
    ax.plot(lrs, acc, marker="o", ms=3, label=name, **style)
    color = style["color"]
    for c in arm["candidates"]:
        if c["diverged"]:
            ax.plot(c["lr"], 100 * c["val_acc"], marker="x", ms=7, color=color)
    best = next(c for c in arm["candidates"] if c["lr"] == arm["chosen_lr"])
    ax.plot(best["lr"], 100 * best["val_acc"], marker="*", ms=11, color=color, mec="black",
            mew=0.5)


NO_REFERENCE = "arms without a searched reference"


def reference_panels(arms: list[str], spec: dict) -> list[tuple[str, list[str]]]:
    """[(title, [reference, arms compared with it])], in the arms' order.  Arms compared with
    no searched reference (an experiment without a baseline, e.g. the feedback rules) share
    one panel, titled ``NO_REFERENCE``, with no arm drawn as its reference.  The title: the
    axis values the panel's arms share (``d = 8``), else the reference's name."""
    groups: dict = {}
    for a in arms:
        ref = baseline_of(a, spec) if a in spec["configs"] else None
        key = ref if ref in arms else a
        groups.setdefault(key, [key])
        if a != key:
            groups[key].append(a)
    alone = [ref for ref, members in groups.items() if len(members) == 1]
    panels = []
    for ref, members in groups.items():
        if len(alone) > 1 and ref in alone:
            if ref == alone[0]:
                panels.append((NO_REFERENCE, alone))
            continue
        axes = [spec["configs"].get(m, {}).get("axes", {}) for m in members]
        shared = [f"{k} = {axis_label(v)}" for k, v in axes[0].items()
                  if all(a.get(k) == v for a in axes)]
        panels.append((", ".join(shared) or ref, members))
    return panels


def _panel(ax, arms: dict, head: str, members: list[str]) -> None:
    colors = plt.get_cmap("tab10").colors
    first = 0 if head == NO_REFERENCE else 1  # the colour of members[i] is colors[i - first]
    for i, name in enumerate(members):
        style = ({"color": "black", "ls": "-", "lw": 1.6} if i < first else
                 {"color": colors[(i - first) % 10], "ls": LINESTYLES[(i - first) % 5],
                  "lw": 1.2})
        _draw_arm(ax, arms[name], name + (" (reference)" if i < first and len(members) > 1
                                          else ""), style)
    ax.set_xscale("log")
    ax.set_title("\n".join(textwrap.wrap(head, 34)), fontsize=9)
    ax.set_xlabel("learning rate", fontsize=8)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=7.5)
    ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.28),
              ncols=1 if len(members) <= 4 else 2)


def plot_search(details: dict, spec: dict, title: str):
    """The figure of one experiment's search; ``spec``: its resolved configuration
    (``config.resolve``), whose grids' ``baseline`` pairs each arm with its reference."""
    arms = details["tuning"]["arms"]
    panels = reference_panels(list(arms), spec)
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(5.0, 3.0 * ncols), 3.5 * nrows),
                             squeeze=False, sharey=True, layout="constrained")
    for ax, (head, members) in zip(axes.flat, panels, strict=False):
        _panel(ax, arms, head, members)
    for ax in axes[:, 0]:
        ax.set_ylabel("validation accuracy (%)", fontsize=8)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    t = details["tuning"]
    fig.suptitle(f"{title}\nlearning-rate search: {t['epochs']} epochs, "
                 f"{len(t['seeds'])} seed(s); star: chosen, cross: diverged", fontsize=9)
    return fig
