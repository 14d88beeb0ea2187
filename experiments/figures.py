"""The ``figures`` stage: every figure, from the files the train stages wrote.

    python -m experiments.figures

Separate from training, so restyling a figure never retrains.  Writes, as
``.png`` and ``.pdf`` under ``reports/figures/``:

* ``<name>``: test accuracy and training loss per epoch, mean over seeds with a
  ±1 std band, one line per configuration (``reports/curves/<name>.csv``);
* ``activations``: the forwards and the backward rules' derivatives on one panel,
  computed by freegrad itself (``fg.FORWARDS``, ``fg.get(rule)``), not re-typed;
* ``bnn_accuracy_vs_d``: the binary units' test accuracy against the input size d;
* ``<cnn|cnn_fashion>_jamming``: the forward x rule jamming grid as a heatmap;
* ``mlp_sweep_grid``: the batch size x learning rate sweep as heatmaps, one per rule;
* ``<name>_cosine``: gradient-direction diagnostics, cosine similarity to the true
  gradient per layer against training step, one panel per configuration
  (``reports/diagnostics/<name>.csv``).
"""

from __future__ import annotations

import json
import math
import re
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from experiments import io, paths  # noqa: E402
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
        with io.atomic_path(paths.FIGURES / f"{stem}.{ext}") as tmp:
            fig.savefig(tmp, format=ext, dpi=150, metadata=meta)
    plt.close(fig)
    print(f"figures: wrote reports/figures/{stem}.png and .pdf")


# The forwards and the backward rules of the paper's experiments (name, rule, params).
FORWARD_NAMES = ("Logistic", "ReLU", "Linear", "Heaviside")
RULES = (("d(Logistic)", "d(Logistic)", {}), ("d(ReLU)", "d(ReLU)", {}),
         ("constant: d(Linear)", "d(Linear)", {}),
         ("rectangular(-0.5, 0.5)", "rectangular", {"a": -0.5, "b": 0.5}),
         ("triangular(width 1)", "triangular", {"width": 1.0}),
         ("noise(σ=0.1)", "noise", {"sigma": 0.1}),
         ("full_jam", "full_jam", {}), ("positive_jam", "positive_jam", {}),
         ("rectangular_jam(-5, 5)", "rectangular_jam", {"a": -5.0, "b": 5.0}))


def plot_activations():
    """Forwards and derivatives (g = 1) from freegrad's own forwards and rules."""
    import freegrad as fg
    import torch

    x = torch.linspace(-6, 6, 601)
    g = torch.ones_like(x)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    for name in FORWARD_NAMES:
        axes[0].plot(x, fg.FORWARDS[name].fn(x), label=name)
    axes[0].set_ylim(-1.5, 2.5)
    axes[0].set_title("forward F(x)", fontsize=10)
    torch.manual_seed(0)  # the stochastic rules draw from the global RNG here
    for label, rule, prm in RULES:
        y = fg.get(rule)(None, g, x, **prm)
        if rule in ("noise", "full_jam", "positive_jam", "rectangular_jam"):  # one draw
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


def plot_bnn(metrics: dict, details: dict):
    """Final test accuracy (mean ± std over seeds) against d, one line per rule."""
    fig, ax = plt.subplots(figsize=(4.8, 3.4), constrained_layout=True)
    lines: dict[str, list] = {}
    for cname, c in details["configs"].items():
        rule = re.sub(r"_d\d+$", "", cname)
        s = metrics[cname]["final_test_acc"]
        if s["mean"] is not None:  # a diverged configuration has no point
            lines.setdefault(rule, []).append((c["d"], s["mean"], s["std"]))
    for rule, pts in lines.items():
        pts.sort()
        ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts],
                    marker="o", capsize=3, label=rule)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("input size d")
    ax.set_ylabel("final test accuracy")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    ax.set_title(f"Binary units ({details['profile']} profile)", fontsize=10)
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
    ax.text(j, i, f"{summary['mean'] * 100:.1f}\n±{summary['std'] * 100:.1f}", ha="center",
            va="center", fontsize=fontsize, color="w" if summary["mean"] < 0.6 else "k")


def plot_jamming(metrics: dict, details: dict, title: str):
    """Heatmap of final test accuracy (mean over seeds): forward x rule, main grid only."""
    import numpy as np

    grid = {}
    for cname in details["configs"]:
        m = re.fullmatch(r"(relu|linear|logistic)_(true|full_jam|positive_jam|rectangular_jam)",
                         cname)
        if m:
            grid[m.groups()] = metrics[cname]["final_test_acc"]
    fwds = [f for f in ("relu", "linear", "logistic") if any(k[0] == f for k in grid)]
    rules = [r for r in ("true", "full_jam", "positive_jam", "rectangular_jam")
             if any(k[1] == r for k in grid)]
    z = np.full((len(fwds), len(rules)), np.nan)
    fig, ax = plt.subplots(figsize=(1.6 * len(rules) + 1.6, 0.8 * len(fwds) + 1.4),
                           constrained_layout=True)
    for i, f in enumerate(fwds):
        for j, r in enumerate(rules):
            _heat_cell(ax, z, i, j, grid.get((f, r)), fontsize=8)
    im = ax.imshow(z, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(rules)), rules)
    ax.set_yticks(range(len(fwds)), fwds)
    fig.colorbar(im, ax=ax, label="final test accuracy")
    ax.set_title(title, fontsize=9)
    return fig


def plot_sweep(metrics: dict, details: dict, title: str):
    """Final test accuracy (mean ± std) over batch size x learning rate, one panel per rule."""
    import numpy as np

    cells = {}
    for cname, c in details["configs"].items():
        rule = cname.rsplit("_", 1)[1]
        cells[(rule, c["batch_size"], c["lr"])] = metrics[cname]["final_test_acc"]
    rules = list(dict.fromkeys(k[0] for k in cells))
    bss = sorted({k[1] for k in cells})
    lrs = sorted({k[2] for k in cells})
    fig, axes = plt.subplots(1, len(rules), figsize=(3.4 * len(rules) + 1, 0.6 * len(bss) + 1.6),
                             squeeze=False, constrained_layout=True)
    for ax, rule in zip(axes[0], rules, strict=True):
        z = np.full((len(bss), len(lrs)), np.nan)
        for i, bs in enumerate(bss):
            for j, lr in enumerate(lrs):
                _heat_cell(ax, z, i, j, cells.get((rule, bs, lr)), fontsize=7)
        im = ax.imshow(z, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(lrs)), [f"{lr:g}" for lr in lrs])
        ax.set_yticks(range(len(bss)), bss)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("batch size")
        ax.set_title(rule, fontsize=9)
    fig.colorbar(im, ax=axes[0, -1], label="final test accuracy")
    fig.suptitle(title, fontsize=9)
    return fig


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


def main() -> int:
    params = params_mod.load(import_modules=False)
    written = 0
    for name, spec in params["experiments"].items():
        cpath = paths.CURVES / f"{name}.csv"
        if not cpath.is_file():
            print(f"figures: no {cpath.relative_to(paths.ROOT)}; run `dvc repro train@{name}`",
                  file=sys.stderr)
            continue
        save(plot(pd.read_csv(cpath), spec.get("title", name)), name)
        written += 1
        metrics = _read_json(paths.METRICS / f"{name}.json")
        details = _read_json(paths.RUNS / f"{name}.json")
        if name == "bnn" and metrics and details:
            save(plot_bnn(metrics, details), "bnn_accuracy_vs_d")
        if name == "mlp_sweep" and metrics and details:
            save(plot_sweep(metrics, details, f"{spec.get('title', name)}: final test accuracy "
                            f"(%), {details['profile']} profile"), "mlp_sweep_grid")
        if name in ("cnn", "cnn_fashion") and metrics and details:
            save(plot_jamming(metrics, details, f"{spec.get('title', name)}: final test accuracy "
                              f"(%), {details['profile']} profile"), f"{name}_jamming")
        dpath = paths.DIAGNOSTICS / f"{name}.csv"
        if dpath.is_file():
            diag = pd.read_csv(dpath)
            if len(diag):
                save(plot_cosine(diag, f"{spec.get('title', name)}: gradient direction"),
                     f"{name}_cosine")
    if written == 0:
        print("error: no curves found in reports/curves/", file=sys.stderr)
        return 1
    save(plot_activations(), "activations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
