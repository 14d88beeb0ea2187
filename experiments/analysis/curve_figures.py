"""The per-experiment learning curves (``reports/figures/<name>``): test accuracy (%) and
training loss per epoch, one thin line per seed and a bold mean over the seeds, one colour
and marker per configuration; a configuration's tuned twin (``<config>_tuned``, the same
configuration at the rate its learning-rate search chose) in the same colour, dashed, in
its configuration's panel.  No band: where seeds split (some learn, some stay at chance) a
±1 std band would span 0-100 % and say less than the seeds' own lines.  A seed whose curve
stops before the last epoch diverged: a cross where it stopped, and the legend says how
many seeds did ("diverged, 3/3 seeds").  More than ``MAX_LINES`` configurations are drawn as
small multiples (``line_panels``), grouped by their grid axes, never their names."""

from __future__ import annotations

import math
import textwrap

import matplotlib.pyplot as plt
import pandas as pd

from experiments.analysis.grid_figures import PERCENT, axis_label

PANELS = [("test_acc", "test accuracy (%)"), ("train_loss", "training loss")]
MAX_LINES = 6  # configurations per panel (their tuned twins join them): more and it blurs
TUNED = "_tuned"  # experiments.training.tuning.tuned_name: <config>_tuned
MARKERS = "osD^vPX*"
SEED_LINE = {"lw": 0.6, "alpha": 0.35}


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


def twin_of(names: list[str]) -> dict[str, str]:
    """{configuration: its tuned twin} over ``names`` (a twin whose configuration is not
    among them is drawn as a configuration of its own)."""
    return {n[:-len(TUNED)]: n for n in names if n.endswith(TUNED) and n[:-len(TUNED)] in names}


def curve_panels(names: list[str], axes: dict) -> list:
    """``line_panels`` over the configurations, each tuned twin right after its own."""
    twins = twin_of(names)
    own = [n for n in names if n not in twins.values()]
    return [(head, [m for c in members for m in (c, *([twins[c]] if c in twins else []))])
            for head, members in line_panels(own, axes)]


def styles(members: list[str]) -> dict[str, dict]:
    """{name: colour, line style, marker}: a colour and marker per configuration of a panel,
    its tuned twin the same, dashed."""
    colors = plt.get_cmap("tab10").colors
    out, i = {}, 0
    for n in members:
        base = n[:-len(TUNED)] if n.endswith(TUNED) and n[:-len(TUNED)] in out else None
        if base:
            out[n] = {**out[base], "ls": "--", "idx": out[base]["idx"]}
            continue
        out[n] = {"color": colors[i % len(colors)], "ls": "-",
                  "marker": MARKERS[i % len(MARKERS)], "idx": i}
        i += 1
    return out


def diverged(g: pd.DataFrame, last_epoch: int) -> pd.DataFrame:
    """The last row of every seed of one configuration's curves that stops before
    ``last_epoch`` (the run diverged at its next epoch)."""
    ends = g.sort_values("epoch").groupby("seed").tail(1)
    return ends[ends["epoch"] < last_epoch]


def label(cname: str, g: pd.DataFrame, last_epoch: int) -> str:
    k, n = len(diverged(g, last_epoch)), g["seed"].nunique()
    return f"{cname} (diverged, {k}/{n} seeds)" if k else cname


def _draw_one(ax, g: pd.DataFrame, col: str, style: dict, last_epoch: int, name: str) -> None:
    scale = 100 if col in PERCENT else 1
    line = {"color": style["color"], "ls": style["ls"]}
    for _, s in g.groupby("seed"):
        ax.plot(s["epoch"], scale * s[col], **line, **SEED_LINE, label="_nolegend_")
    mean = scale * g.groupby("epoch")[col].mean()
    every = max(1, len(mean) // 5)  # markers staggered per line: coinciding lines show both
    ax.plot(mean.index, mean, **line, lw=1.5, marker=style["marker"], ms=4,
            markevery=(style["idx"] % every, every), label=label(name, g, last_epoch))
    ends = diverged(g, last_epoch)
    ax.plot(ends["epoch"], scale * ends[col], ls="none", marker="x", ms=7, mew=1.5,
            color=style["color"], label="_nolegend_")


def _draw(ax, curves: pd.DataFrame, names: list[str], col: str, size: float = 8) -> None:
    last = curves["epoch"].max()
    for cname, style in styles(names).items():
        _draw_one(ax, curves[curves["config"] == cname], col, style, last, cname)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=size)


def _loss_scale(ax, losses: pd.Series) -> None:
    """A log scale when a panel's losses span more than 100x (a diverging run, 1e9, would
    flatten every other line at 0); each panel keeps its own loss scale for that reason."""
    positive = losses[losses > 0]
    if len(positive) and positive.max() > 100 * positive.min():
        ax.set_yscale("log")


def _one_panel(curves: pd.DataFrame, names: list[str], title: str):
    fig, pair = plt.subplots(1, 2, figsize=(7.2, 2.8), constrained_layout=True)
    for ax, (col, ylabel) in zip(pair, PANELS, strict=True):
        _draw(ax, curves, names, col, size=9)
        ax.set_xlabel("epoch", fontsize=10)
        ax.set_ylabel(ylabel, fontsize=10)
    _loss_scale(pair[1], curves["train_loss"])
    fig.legend(*pair[0].get_legend_handles_labels(), loc="outside right upper",
               frameon=False, fontsize=9)
    fig.suptitle(f"{title}\nthin: each seed; bold: mean; x: a seed diverged", fontsize=10)
    return fig


def _legend_cols(labels: list[str]) -> int:
    return 2 if len(labels) > 3 and max(map(len, labels)) <= 18 else 1


def _legend_rows(curves: pd.DataFrame, members: list[str]) -> int:
    last = curves["epoch"].max()
    labels = [label(m, curves[curves["config"] == m], last) for m in members]
    return math.ceil(len(labels) / _legend_cols(labels))


def plot(curves: pd.DataFrame, title: str, configs: dict | None = None):
    """The learning curves of one experiment (the module's docstring).

    A few configurations: one pair of panels, the legend to its right.  More: small
    multiples (``curve_panels``), each a test-accuracy panel over a training-loss panel
    with its own legend below, outside the data; the accuracy scale is shared so panels
    compare at a glance, the loss scale is each panel's own (``_loss_scale``)."""
    names = list(dict.fromkeys(curves["config"]))
    panels = curve_panels(names, {n: (configs or {}).get(n, {}).get("axes", {}) for n in names})
    if len(panels) == 1:
        return _one_panel(curves, panels[0][1], title)
    nrows = math.ceil(len(panels) / 3)
    ncols = math.ceil(len(panels) / nrows)
    rows = max(_legend_rows(curves, m) for _, m in panels)  # the legends' height, in entries
    fig = plt.figure(figsize=(2.9 * ncols, (3.4 + 0.14 * rows) * nrows), layout="constrained")
    subs = fig.subfigures(nrows, ncols, squeeze=False)
    ref: dict = {}
    for sub, (head, members) in zip(subs.flat, panels, strict=False):
        acc = sub.add_subplot(2, 1, 1, sharey=ref.get("acc"))
        loss = sub.add_subplot(2, 1, 2, sharex=acc)
        ref.setdefault("acc", acc)
        for ax, (col, ylabel) in zip((acc, loss), PANELS, strict=True):
            _draw(ax, curves, members, col)
            ax.set_ylabel(ylabel, fontsize=8)
        _loss_scale(loss, curves[curves["config"].isin(members)]["train_loss"])
        loss.set_xlabel("epoch", fontsize=8)
        acc.set_title("\n".join(textwrap.wrap(head or "not in the grids", 34)), fontsize=9)
        handles, labels = acc.get_legend_handles_labels()
        sub.legend(handles, labels, loc="outside lower center", frameon=False, fontsize=7,
                   ncol=_legend_cols(labels))
    for sub in subs.flat[len(panels):]:
        sub.set_visible(False)
    fig.suptitle(f"{title}\nthin: each seed; bold: mean; x: a seed diverged", fontsize=10)
    return fig
