"""The ``figures`` stage: every figure, from the files the train stages wrote.

    python -m experiments.analysis.figures

Separate from training, so restyling a figure never retrains.  Writes, as
``.png`` and ``.pdf`` under ``reports/figures/``:

* ``<name>``: test accuracy (%) and training loss per epoch, mean over seeds with a
  ±1 std band (clipped to the metric's range), one line per configuration; more than six
  configurations as small multiples of at most six lines (``line_panels``)
  (``reports/curves/<name>.csv``);
* ``activations``: every forward and backward rule the configurations use, computed by
  freegrad itself (``fg.FORWARDS``, ``fg.get(rule)``; stochastic rules as one draw);
* ``<name>_<figure>``: each entry of the experiment's ``figures`` in params.yaml, over the
  configurations' grid axes (never their names): a ``heatmap`` of final test accuracy in %
  (``rows`` x ``columns``, a panel per ``panels`` value; e.g. ``cnn_jamming``,
  ``mlp_sweep_grid``) or ``lines`` (against axis ``x``, a line per ``lines`` value;
  ``bnn_accuracy_vs_d``);
* ``<name>_lr``: the learning-rate search, validation accuracy against the rate per arm
  (``search_figures``; experiments with ``tuning``);
* ``<name>_cosine``: gradient-direction diagnostics, cosine similarity to the true
  gradient per layer against training step, one panel per configuration
  (``reports/diagnostics/<name>.csv``).
"""

from __future__ import annotations

import json
import math
import sys
import textwrap

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from experiments import config  # noqa: E402
from experiments.analysis.grid_figures import PERCENT, PLOTS, axis_label, band  # noqa: E402
from experiments.analysis.search_figures import plot_search  # noqa: E402
from experiments.results import files, paths  # noqa: E402

PANELS = [("test_acc", "test accuracy (%)"), ("train_loss", "training loss")]
MAX_LINES = 6  # lines per panel: more and tab10's colours, the legend and the bands blur


def _groups(names: list[str], key) -> dict:
    out: dict = {}
    for n in names:
        out.setdefault(key(n), []).append(n)
    return out


def line_panels(names: list[str], axes: dict, max_lines: int = MAX_LINES) -> list:
    """[(title, configuration names)]: the panels of a per-configuration line figure, each
    with at most ``max_lines`` lines.  Configurations of one grid (the same axis names) share
    panels; a grid with more lines is split by the axis that gives the fewest panels within
    the limit and at least two lines each (mlp_sweep: one panel per batch size), else cut
    into near-equal runs in grid order.  Reads the configurations' axes, never their names."""
    panels = []
    families = _groups(names, lambda n: tuple(axes.get(n, {})))
    for keys, members in families.items():
        fixed = [k for k in keys if len({axes[m][k] for m in members}) == 1]
        varying = [k for k in keys if k not in fixed]
        head = ", ".join([axis_label(axes[members[0]][k]) for k in fixed]  # "relu, by reading"
                         + ([f"by {' x '.join(varying)}"] if varying else []))
        if len(members) <= max_lines:
            panels.append((head, members))
            continue
        splits = [(k, _groups(members, lambda n, k=k: axes[n][k])) for k in varying]
        splits = [(k, g) for k, g in splits  # (a panel of one line would compare nothing)
                  if max(map(len, g.values())) <= max_lines and min(map(len, g.values())) > 1]
        if splits:
            k, groups = min(splits, key=lambda s: len(s[1]))
            panels += [(f"{k} = {axis_label(v)}", g) for v, g in groups.items()]
            continue
        n = math.ceil(len(members) / max_lines)
        size = math.ceil(len(members) / n)
        panels += [(f"{head} ({i + 1}/{n})", members[i * size:(i + 1) * size])
                   for i in range(n)]
    return panels


def _draw(ax, curves: pd.DataFrame, names: list[str], col: str, size: float = 8) -> None:
    colors = plt.get_cmap("tab10").colors  # distinct within a panel (<= MAX_LINES lines)
    for i, cname in enumerate(names):
        g = curves[curves["config"] == cname]
        stats = g.groupby("epoch")[col].agg(["mean", "std"]).fillna(0.0)
        if col in PERCENT:
            stats = stats * 100
        color = colors[i % len(colors)]
        ax.plot(stats.index, stats["mean"], label=cname, color=color, lw=1.3)
        ax.fill_between(stats.index, *band(stats["mean"], stats["std"], col), color=color,
                        alpha=0.18, lw=0)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=size)


def _loss_scale(ax, losses: pd.Series) -> None:
    """A log scale when a panel's losses span more than 100x (a diverging run, 1e9, would
    flatten every other line at 0); each panel keeps its own loss scale for that reason."""
    positive = losses[losses > 0]
    if len(positive) and positive.max() > 100 * positive.min():
        ax.set_yscale("log")


def plot(curves: pd.DataFrame, title: str, configs: dict | None = None):
    """Test accuracy and training loss per epoch, mean over seeds with a ±1 std band.

    A few configurations: one pair of panels, the legend to its right.  More: small
    multiples (``line_panels``), each a test-accuracy panel over a training-loss panel
    with its own legend below, outside the data; the accuracy scale is shared so panels
    compare at a glance, the loss scale is each panel's own (``_loss_scale``)."""
    names = list(dict.fromkeys(curves["config"]))
    axes = {n: (configs or {}).get(n, {}).get("axes", {}) for n in names}
    panels = line_panels(names, axes)
    if len(panels) == 1:
        fig, pair = plt.subplots(1, 2, figsize=(7.2, 2.8), constrained_layout=True)
        for ax, (col, label) in zip(pair, PANELS, strict=True):
            _draw(ax, curves, names, col, size=9)
            ax.set_xlabel("epoch", fontsize=10)
            ax.set_ylabel(label, fontsize=10)
        fig.legend(*pair[0].get_legend_handles_labels(), loc="outside right upper",
                   frameon=False, fontsize=9)
        fig.suptitle(title, fontsize=10)
        return fig
    nrows = math.ceil(len(panels) / 3)
    ncols = math.ceil(len(panels) / nrows)
    longest = max(len(n) for n in names)
    fig = plt.figure(figsize=(2.7 * ncols, 4.4 * nrows), layout="constrained")
    subs = fig.subfigures(nrows, ncols, squeeze=False)
    ref: dict = {}
    for sub, (head, members) in zip(subs.flat, panels, strict=False):
        acc = sub.add_subplot(2, 1, 1, sharey=ref.get("acc"))
        loss = sub.add_subplot(2, 1, 2, sharex=acc)
        ref.setdefault("acc", acc)
        for ax, (col, label) in zip((acc, loss), PANELS, strict=True):
            _draw(ax, curves, members, col)
            ax.set_ylabel(label, fontsize=8)
        _loss_scale(loss, curves[curves["config"].isin(members)]["train_loss"])
        loss.set_xlabel("epoch", fontsize=8)
        acc.set_title("\n".join(textwrap.wrap(head, 34)), fontsize=9)
        sub.legend(*acc.get_legend_handles_labels(), loc="outside lower center",
                   frameon=False, fontsize=7.5, ncol=2 if longest <= 14 else 1)
    for sub in subs.flat[len(panels):]:
        sub.set_visible(False)
    fig.suptitle(title, fontsize=10)
    return fig


def save(fig, stem: str) -> None:
    for ext, meta in (("png", {"Software": None}), ("pdf", {"CreationDate": None})):
        with files.atomic_path(paths.LAYOUT.figure(stem, ext)) as tmp:
            fig.savefig(tmp, format=ext, dpi=150, metadata=meta)
    plt.close(fig)
    print(f"figures: wrote reports/figures/{stem}.png and .pdf")


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
        shown = ", ".join(f"{k}={axis_label(v)}" for k, v in prm.items())
        label = rule + (f"({shown})" if prm else "")
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


def plot_cosine(diag: pd.DataFrame, title: str):
    """Cosine similarity to the true gradient per layer (weight tensors) and overall, one
    panel per configuration.  The layers are the same in every panel, so one legend below
    the panels names them, in a type size that stays readable at the paper's print size."""
    configs = list(dict.fromkeys(diag["config"]))
    ncol = min(3, len(configs))
    nrow = math.ceil(len(configs) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.6 * ncol, 2.1 * nrow + 0.5),
                             squeeze=False, constrained_layout=True, sharey=True)
    legend: dict = {}
    for ax, cname in zip(axes.flat, configs, strict=False):
        g = diag[diag["config"] == cname]
        seed = g["seed"].min()
        g = g[g["seed"] == seed]
        for pname, h in g.groupby("parameter", sort=False):
            if pname != "all" and not pname.endswith("weight"):
                continue
            style = ({"color": "k", "lw": 1.6, "ls": "--"} if pname == "all" else {"lw": 1.0})
            (line,) = ax.plot(h["step"], h["cosine"], label=pname, **style)
            legend.setdefault("all (every parameter)" if pname == "all" else pname, line)
        ax.set_title(f"{cname} (seed {seed})", fontsize=9)
        ax.set_xlabel("training step", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(configs):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("cosine to true gradient", fontsize=8)
    fig.legend(legend.values(), legend.keys(), loc="outside lower center", frameon=False,
               fontsize=9, ncol=min(len(legend), 6), title="layer (weight tensor)",
               title_fontsize=9)
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
    save(plot(pd.read_csv(cpath), spec["title"], spec["configs"]), name)
    metrics = _read_json(layout.report("metrics", name))
    details = _read_json(layout.report("runs", name))
    for fig_spec in spec["figures"] if metrics and details else []:
        title = f"{spec['title']}\nfinal test accuracy, {details['profile']} profile"
        save(PLOTS[fig_spec["kind"]](spec, metrics, fig_spec, title),
             f"{name}_{fig_spec['name']}")
    if details and details.get("tuning"):
        save(plot_search(details, spec["configs"], spec["title"], line_panels), f"{name}_lr")
    dpath = layout.report("diagnostics", name)
    diag = pd.read_csv(dpath) if dpath.is_file() else []
    if len(diag):
        save(plot_cosine(diag, f"{spec['title']}: gradient direction"), f"{name}_cosine")
    return 1


def main() -> int:
    params = config.load(import_modules=False)
    specs = {}
    for name in params["experiments"]:
        details = _read_json(paths.LAYOUT.report("runs", name))
        specs[name] = config.resolve(params, name, details and details["profile"])
    if sum(experiment_figures(name, spec) for name, spec in specs.items()) == 0:
        print("error: no curves found in reports/curves/", file=sys.stderr)
        return 1
    save(plot_activations(specs), "activations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
