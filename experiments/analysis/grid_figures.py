"""The figures over a grid's axes that an experiment's ``figures`` entries in params.yaml ask
for: a ``heatmap`` of final test accuracy in % (``rows`` x ``columns``, a panel per ``panels``
value) or ``lines`` (against axis ``x``, a line per ``lines`` value).  Drawn from the
configurations' axes, never their names."""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import pandas as pd

from experiments.analysis import tables
from experiments.analysis.comparisons import baseline_of

# Accuracies are drawn in percent, as the tables and the paper print them.
PERCENT = {"test_acc", "train_acc"}


def band(mean: pd.Series, std: pd.Series, col: str) -> tuple[pd.Series, pd.Series]:
    """The ±1 std band around ``mean``, clipped to the metric's range: an accuracy lies in
    [0, 100] % and a loss is >= 0, so mean ± std beyond that (a skewed spread over few seeds)
    would draw values no run can have."""
    lo, hi = mean - std, mean + std
    return lo.clip(lower=0.0), (hi.clip(upper=100.0) if col in PERCENT else hi)


def axis_label(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def cells(spec: dict, metrics: dict, keys: tuple[str, ...]) -> dict:
    """{(axis values of ``keys``): final test accuracy summary} over the configurations that
    ran and whose axes are exactly ``keys`` (a grid's other configurations are left out)."""
    out = {}
    for cname, cfg in spec["configs"].items():
        if cname in metrics and set(cfg["axes"]) == set(keys):
            out[tuple(cfg["axes"][k] for k in keys)] = metrics[cname]["final_test_acc"]
    return out


def _values(cells_: dict, i: int) -> list:
    return list(dict.fromkeys(k[i] for k in cells_))


def plot_lines(spec: dict, metrics: dict, fig_spec: dict, title: str):
    """Final test accuracy (%, mean ± std over seeds) against axis ``x``, one line per value
    of axis ``lines``, the legend outside the data; a diverged configuration has no point."""
    x, by = fig_spec["x"], fig_spec["lines"]
    data = cells(spec, metrics, (by, x))
    fig, ax = plt.subplots(figsize=(5.6, 3.2), constrained_layout=True)
    for line in _values(data, 0):
        pts = sorted((k[1], 100 * s["mean"], 100 * s["std"]) for k, s in data.items()
                     if k[0] == line and s["mean"] is not None)
        xs, mean, std = (pd.Series([p[i] for p in pts], dtype=float) for i in range(3))
        lo, hi = band(mean, std, "test_acc")  # ±1 std clipped to [0, 100] %, as the curves'
        ax.errorbar(xs, mean, yerr=[mean - lo, hi - mean], marker="o", capsize=3,
                    label=axis_label(line))
    if all(isinstance(v, int) and v > 0 for v in _values(data, 1)):
        ax.set_xscale("log", base=2)
    ax.set_xlabel(x)
    ax.set_ylabel("final test accuracy (%)")
    ax.grid(alpha=0.3)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper", frameon=False,
               title=by, fontsize=8, title_fontsize=8)
    ax.set_title("\n".join(w for line in title.split("\n") for w in textwrap.wrap(line, 60)),
                 fontsize=9)
    return fig


HEAT_LABEL = "final test accuracy (%)"  # the colour bar's; the cells print mean ± std in %


def references(spec: dict, metrics: dict, fig_spec: dict) -> dict:
    """{(panel, row, column): the final test accuracy summary of the reference the cell's
    configuration is compared with (``comparisons.baseline_of``, by grid axes), or "self"
    for a cell that is a reference}; cells without a reference are left out."""
    keys = tuple(k for k in (fig_spec.get("panels"), fig_spec["rows"], fig_spec["columns"])
                 if k)
    out = {}
    for cname, cfg in spec["configs"].items():
        if cname not in metrics or set(cfg["axes"]) != set(keys):
            continue
        cell = tuple(cfg["axes"][k] for k in keys)
        cell = cell if fig_spec.get("panels") else (None, *cell)
        ref = baseline_of(cname, spec)
        if ref is None and cfg.get("baseline"):
            out[cell] = "self"
        elif ref in metrics:
            out[cell] = metrics[ref]["final_test_acc"]
    return out


def _heat_cell(ax, z, i, j, summary: dict | None, ref, fontsize: int) -> None:
    """Cell (i, j) of a heatmap of accuracies: its value in ``z`` and "mean ± std" written
    on it, both in percent, then its reference's mean ("ref 97.5", "reference" for a cell
    that is one); "diverged" for a configuration without a result, nothing for one not
    run."""
    if summary is None:
        return
    if ref == "self":
        note = "\n(reference)"
    elif ref is not None:
        note = "\nref " + ("diverged" if ref["mean"] is None else tables.num(ref["mean"], 100, 1))
    else:
        note = ""
    if summary["mean"] is None:
        ax.text(j, i, "diverged" + note, ha="center", va="center", fontsize=fontsize)
        return
    z[i, j] = 100 * summary["mean"]  # percent, like the text on it and the colour bar
    text = f"{tables.num(summary['mean'], 100, 1)}\n{tables.PM}{tables.num(summary['std'], 100, 1)}"
    ax.text(j, i, text + note, ha="center", va="center", fontsize=fontsize,
            color="w" if summary["mean"] < 0.6 else "k")


def heatmap_grid(spec: dict, metrics: dict, fig_spec: dict) -> dict:
    """What a heatmap shows: {"panels", "rows", "columns": axis values in grid order,
    "cells": {(panel, row, column): summary}} (one panel ``None`` without ``panels``)."""
    keys = (fig_spec.get("panels"), fig_spec["rows"], fig_spec["columns"])
    data = cells(spec, metrics, tuple(k for k in keys if k))
    if keys[0] is None:
        data = {(None, *k): v for k, v in data.items()}
    return {"panels": _values(data, 0), "rows": _values(data, 1),
            "columns": _values(data, 2), "cells": data}


def plot_heatmap(spec: dict, metrics: dict, fig_spec: dict, title: str):
    """Final test accuracy (mean ± std) over axes ``rows`` x ``columns``, one panel per value
    of axis ``panels`` (if given), each cell with its reference's mean (``references``)."""
    import numpy as np

    grid = heatmap_grid(spec, metrics, fig_spec)
    refs = references(spec, metrics, fig_spec)
    rows, cols = grid["rows"], grid["columns"]
    fig, axes = plt.subplots(1, len(grid["panels"]),
                             figsize=(1.4 * len(cols) * len(grid["panels"]) + 1.8,
                                      0.95 * len(rows) + 1.5),
                             squeeze=False, constrained_layout=True)
    for ax, panel in zip(axes[0], grid["panels"], strict=True):
        z = np.full((len(rows), len(cols)), np.nan)
        for i, r in enumerate(rows):
            for j, c in enumerate(cols):
                _heat_cell(ax, z, i, j, grid["cells"].get((panel, r, c)),
                           refs.get((panel, r, c)), fontsize=8)
        im = ax.imshow(z, vmin=0, vmax=100, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(cols)), [axis_label(c) for c in cols])
        ax.set_yticks(range(len(rows)), [axis_label(r) for r in rows])
        ax.set_xlabel(fig_spec["columns"])
        ax.set_ylabel(fig_spec["rows"])
        if panel is not None:
            ax.set_title(axis_label(panel), fontsize=9)
    fig.colorbar(im, ax=axes[0, -1], label=HEAT_LABEL)
    fig.suptitle(title, fontsize=9)
    return fig


PLOTS = {"heatmap": plot_heatmap, "lines": plot_lines}
