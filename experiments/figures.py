"""The ``figures`` stage: every figure, from the files the train stages wrote.

    python -m experiments.figures

Separate from training, so restyling a figure never retrains.  Writes, as
``.png`` and ``.pdf`` under ``reports/figures/``:

* ``<name>``: test accuracy and training loss per epoch, mean over seeds with a
  ±1 std band, one line per configuration (``reports/curves/<name>.csv``);
* ``activations``: every forward and backward rule the configurations use, computed by
  freegrad itself (``fg.FORWARDS``, ``fg.get(rule)``; stochastic rules as one draw);
* ``<name>_<figure>``: each entry of the experiment's ``figures`` in params.yaml, over the
  configurations' grid axes (never their names): a ``heatmap`` of final test accuracy
  (``rows`` x ``columns``, a panel per ``panels`` value; e.g. ``cnn_jamming``,
  ``mlp_sweep_grid``) or ``lines`` (against axis ``x``, a line per ``lines`` value;
  ``bnn_accuracy_vs_d``);
* ``<name>_cosine``: gradient-direction diagnostics, cosine similarity to the true
  gradient per layer against training step, one panel per configuration
  (``reports/diagnostics/<name>.csv``).
"""

from __future__ import annotations

import json
import math
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from experiments import io, paths, tables  # noqa: E402
from experiments import params as params_mod  # noqa: E402

PANELS = [("test_acc", "Test accuracy"), ("train_loss", "Training loss")]


def plot(curves: pd.DataFrame, title: str):
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 3.2),
                             constrained_layout=True)
    for ax, (col, label) in zip(axes, PANELS, strict=True):
        for cname, g in curves.groupby("config", sort=False):
            stats = g.groupby("epoch")[col].agg(["mean", "std"]).fillna(0.0)
            ax.plot(stats.index, stats["mean"], label=cname)
            ax.fill_between(stats.index, stats["mean"] - stats["std"],
                            stats["mean"] + stats["std"], alpha=0.2)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    n = curves["config"].nunique()
    axes[0].legend(frameon=False, fontsize=7 if n > 6 else None, ncol=2 if n > 8 else 1)
    fig.suptitle(title, fontsize=10)
    return fig


def save(fig, stem: str) -> None:
    for ext, meta in (("png", {"Software": None}), ("pdf", {"CreationDate": None})):
        with io.atomic_path(paths.LAYOUT.figure(stem, ext)) as tmp:
            fig.savefig(tmp, format=ext, dpi=150, metadata=meta)
    plt.close(fig)
    print(f"figures: wrote reports/figures/{stem}.png and .pdf")


def rules_used(specs: dict) -> tuple[list[str], list[tuple[str, dict]]]:
    """The forwards and the (rule, rule_params) the experiments' configurations use."""
    forwards, rules = {}, {}
    for spec in specs.values():
        for cfg in spec["configs"].values():
            forwards[cfg["forward"]] = None
            key = (cfg["backward"], tuple(sorted(cfg["rule_params"].items())))
            rules.setdefault(key, (cfg["backward"], dict(cfg["rule_params"])))
    return list(forwards), list(rules.values())


def plot_activations(specs: dict):
    """Forwards and derivatives (g = 1) from freegrad's own forwards and rules, for every
    forward and rule the experiments use."""
    import freegrad as fg
    import torch

    forwards, rules = rules_used(specs)
    x = torch.linspace(-6, 6, 601)
    g = torch.ones_like(x)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    for name in forwards:
        axes[0].plot(x, fg.FORWARDS[name].fn(x), label=name)
    axes[0].set_ylim(-1.5, 2.5)
    axes[0].set_title("forward F(x)", fontsize=10)
    torch.manual_seed(0)  # the stochastic rules draw from the global RNG here
    for rule, prm in rules:
        label = rule + (f"({', '.join(f'{k}={v:g}' for k, v in prm.items())})" if prm else "")
        y = fg.get(rule)(None, g, x, **prm)
        if fg.get(rule).stochastic:  # one draw
            axes[1].plot(x[::8], y[::8], ".", ms=3, alpha=0.7, label=label + " (one draw)")
        else:
            axes[1].plot(x, y, label=label, lw=1.5)
    axes[1].set_title("backward: the rule applied to g = 1 (the 'derivative')", fontsize=10)
    for ax in axes:
        ax.set_xlabel("x (activation input)")
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=7)
    return fig


def _read_json(path):
    return json.loads(path.read_text()) if path.is_file() else None


def _label(v) -> str:
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
    """Final test accuracy (mean ± std over seeds) against axis ``x``, one line per value
    of axis ``lines``; a diverged configuration has no point."""
    x, by = fig_spec["x"], fig_spec["lines"]
    data = cells(spec, metrics, (by, x))
    fig, ax = plt.subplots(figsize=(4.8, 3.4), constrained_layout=True)
    for line in _values(data, 0):
        pts = sorted((k[1], s["mean"], s["std"]) for k, s in data.items()
                     if k[0] == line and s["mean"] is not None)
        ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts],
                    marker="o", capsize=3, label=_label(line))
    if all(isinstance(v, int) and v > 0 for v in _values(data, 1)):
        ax.set_xscale("log", base=2)
    ax.set_xlabel(x)
    ax.set_ylabel("final test accuracy")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    ax.set_title(title, fontsize=10)
    return fig


def _heat_cell(ax, z, i, j, summary: dict | None, fontsize: int) -> None:
    """Cell (i, j) of a heatmap of accuracies: its value in ``z`` and "mean ± std" written
    on it; "diverged" for a configuration without a result, nothing for one not run."""
    if summary is None:
        return
    if summary["mean"] is None:
        ax.text(j, i, "diverged", ha="center", va="center", fontsize=fontsize)
        return
    z[i, j] = summary["mean"]
    text = f"{tables.num(summary['mean'], 100, 1)}\n{tables.PM}{tables.num(summary['std'], 100, 1)}"
    ax.text(j, i, text, ha="center",
            va="center", fontsize=fontsize, color="w" if summary["mean"] < 0.6 else "k")


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
    of axis ``panels`` (if given)."""
    import numpy as np

    grid = heatmap_grid(spec, metrics, fig_spec)
    rows, cols = grid["rows"], grid["columns"]
    fig, axes = plt.subplots(1, len(grid["panels"]),
                             figsize=(1.6 * len(cols) * len(grid["panels"]) + 1.6,
                                      0.8 * len(rows) + 1.4),
                             squeeze=False, constrained_layout=True)
    for ax, panel in zip(axes[0], grid["panels"], strict=True):
        z = np.full((len(rows), len(cols)), np.nan)
        for i, r in enumerate(rows):
            for j, c in enumerate(cols):
                _heat_cell(ax, z, i, j, grid["cells"].get((panel, r, c)), fontsize=7)
        im = ax.imshow(z, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(cols)), [_label(c) for c in cols])
        ax.set_yticks(range(len(rows)), [_label(r) for r in rows])
        ax.set_xlabel(fig_spec["columns"])
        ax.set_ylabel(fig_spec["rows"])
        if panel is not None:
            ax.set_title(_label(panel), fontsize=9)
    fig.colorbar(im, ax=axes[0, -1], label="final test accuracy")
    fig.suptitle(title, fontsize=9)
    return fig


PLOTS = {"heatmap": plot_heatmap, "lines": plot_lines}


def plot_cosine(diag: pd.DataFrame, title: str):
    """Cosine similarity to the true gradient per layer (weight tensors) and overall."""
    configs = list(dict.fromkeys(diag["config"]))
    ncol = min(3, len(configs))
    nrow = math.ceil(len(configs) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.0 * nrow), squeeze=False,
                             constrained_layout=True, sharey=True)
    for ax, cname in zip(axes.flat, configs, strict=False):
        g = diag[diag["config"] == cname]
        seed = g["seed"].min()
        g = g[g["seed"] == seed]
        for pname, h in g.groupby("parameter", sort=False):
            if pname != "all" and not pname.endswith("weight"):
                continue
            ax.plot(h["step"], h["cosine"], label=pname,
                    **({"color": "k", "lw": 2, "ls": "--"} if pname == "all" else {}))
        ax.set_title(f"{cname} (seed {seed})", fontsize=9)
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(configs):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("cosine to true gradient")
    axes.flat[0].legend(frameon=False, fontsize=7)
    fig.suptitle(title, fontsize=10)
    return fig


def experiment_figures(name: str, spec: dict) -> int:
    """Every figure of one experiment; the number written (0 without curves)."""
    layout = paths.LAYOUT
    cpath = layout.report("curves", name)
    if not cpath.is_file():
        print(f"figures: no {layout.rel(cpath)}; run `dvc repro train@{name}`",
              file=sys.stderr)
        return 0
    save(plot(pd.read_csv(cpath), spec["title"]), name)
    metrics = _read_json(layout.report("metrics", name))
    details = _read_json(layout.report("runs", name))
    for fig_spec in spec["figures"] if metrics and details else []:
        title = f"{spec['title']}: final test accuracy, {details['profile']} profile"
        save(PLOTS[fig_spec["kind"]](spec, metrics, fig_spec, title),
             f"{name}_{fig_spec['name']}")
    dpath = layout.report("diagnostics", name)
    diag = pd.read_csv(dpath) if dpath.is_file() else []
    if len(diag):
        save(plot_cosine(diag, f"{spec['title']}: gradient direction"), f"{name}_cosine")
    return 1


def main() -> int:
    params = params_mod.load(import_modules=False)
    specs = {}
    for name in params["experiments"]:
        details = _read_json(paths.LAYOUT.report("runs", name))
        specs[name] = params_mod.resolve(params, name, details and details["profile"])
    if sum(experiment_figures(name, spec) for name, spec in specs.items()) == 0:
        print("error: no curves found in reports/curves/", file=sys.stderr)
        return 1
    save(plot_activations(specs), "activations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
