"""What the figures show agrees with what they say, and stays readable with many
configurations: heatmap cells and colour bar in the same unit, std bands within an
accuracy's range, per-configuration line figures as small multiples with distinct colours
and the legend outside the data.  No training: curves and metrics are made up."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402

from experiments import config as P  # noqa: E402
from experiments.analysis import figures, grid_figures  # noqa: E402
from tests.pipeline.test_declarative import fake_reports  # noqa: E402


def fake_curves(configs, epochs: int = 4, seeds: int = 3) -> pd.DataFrame:
    """Per-run curves near 100 % accuracy with a large spread over seeds: mean + std > 1."""
    rng = np.random.default_rng(0)
    rows = [(c, s, e, 2.0 / (e + 1) + rng.uniform(0, 1.5), min(1.0, 0.7 + 0.3 * rng.random()))
            for c in configs for s in range(seeds) for e in range(epochs + 1)]
    return pd.DataFrame(rows, columns=["config", "seed", "epoch", "train_loss", "test_acc"])


def _axes(spec):
    return {n: c["axes"] for n, c in spec["configs"].items()}


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def _legends(fig):
    subs = [fig, *fig.subfigs]
    return [lg for f in subs for lg in f.legends] + [ax.get_legend() for ax in fig.axes
                                                     if ax.get_legend()]


@pytest.mark.parametrize("name", ["mlp_sweep", "cnn"])
def test_heatmap_cells_and_colour_bar_are_both_percent(name):
    spec = P.resolve(P.load(), name, "full")
    metrics, _ = fake_reports(name, spec)
    fig_spec = spec["figures"][0]
    fig = grid_figures.plot_heatmap(spec, metrics, fig_spec, "t")
    *panels, cbar = fig.axes
    assert cbar.get_ylabel() == "final test accuracy (%)"
    assert cbar.get_ylim() == (0.0, 100.0)
    grid = grid_figures.heatmap_grid(spec, metrics, fig_spec)
    for ax, panel in zip(panels, grid["panels"], strict=True):
        z = ax.get_images()[0].get_array()
        texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text()
                 for t in ax.texts}
        for i, r in enumerate(grid["rows"]):
            for j, c in enumerate(grid["columns"]):
                mean = grid["cells"][(panel, r, c)]["mean"]
                shown = float(texts[(i, j)].split("\n")[0])  # "96.1\n±0.3": percent
                assert shown == pytest.approx(100 * mean, abs=0.05)
                ref = grid_figures.references(spec, metrics, fig_spec)[(panel, r, c)]
                note = texts[(i, j)].split("\n")[-1]  # the reference the verdicts use
                assert note == ("(reference)" if ref == "self" else
                                f"ref {100 * ref['mean']:.1f}")
                assert z[i, j] == pytest.approx(100 * mean)  # the colour, on the bar's scale
    # the cells marked "(reference)" are the configurations their grid's baseline names
    # (its axes already what the baseline asks for), read from params, not from references()
    refs = grid_figures.references(spec, metrics, fig_spec)
    keys = [k for k in (fig_spec.get("panels"), fig_spec["rows"], fig_spec["columns"]) if k]
    own = {(*([] if fig_spec.get("panels") else [None]), *(c["axes"][k] for k in keys))
           for c in spec["configs"].values() if set(c["axes"]) == set(keys)
           and c.get("baseline") and {**c["axes"], **c["baseline"]} == c["axes"]}
    assert {cell for cell, ref in refs.items() if ref == "self"} == own and own


@pytest.mark.parametrize("name, panels", [("mlp_sweep", [6] * 4), ("bnn", [5] * 3),
                                          ("lenet", None), ("cnn", None), ("suc", [2])])
def test_line_figures_are_small_multiples_of_few_lines(name, panels):
    spec = P.resolve(P.load(), name, "full")
    got = figures.line_panels(list(spec["configs"]), _axes(spec))
    flat = [c for _, members in got for c in members]
    assert sorted(flat) == sorted(spec["configs"])  # every configuration, once
    assert all(2 <= len(m) <= figures.MAX_LINES for _, m in got) or len(got) == 1
    if panels:
        assert [len(m) for _, m in got] == panels
    if name == "mlp_sweep":  # one panel per batch size (the axis giving fewest panels)
        assert [t for t, _ in got] == [f"batch_size = {b}" for b in (16, 32, 64, 128)]


def _split_curves(configs, seeds: int = 5, epochs: int = 6, tuned: bool = False):
    """Seeds that split: even seeds learn (to 98 %), odd ones stay at chance (10 %); the
    losses fall to near 0, so mean - std < 0.  With ``tuned``, a twin per configuration."""
    names = [*configs, *(f"{c}_tuned" for c in configs if tuned)]
    rows = [(c, s, e, 2.0 * 0.02 ** (e / epochs) * (s + 1), 0.98 if s % 2 == 0 and e else 0.1)
            for c in names for s in range(seeds) for e in range(epochs + 1)]
    return pd.DataFrame(rows, columns=["config", "seed", "epoch", "train_loss", "test_acc"])


def _labelled(ax):
    return [line for line in ax.get_lines() if not line.get_label().startswith("_")]


@pytest.mark.parametrize("name", ["suc", "mlp_sweep", "bnn", "lenet", "cnn"])
def test_curves_draw_each_seed_no_band_beyond_the_data_distinct_styles_legend_outside(name):
    spec = P.resolve(P.load(), name, "full")
    curves = _split_curves(spec["configs"], tuned=True)
    fig = figures.plot(curves, spec["title"], spec["configs"])
    fig.canvas.draw()
    acc_axes = [ax for ax in fig.axes if ax.get_ylabel() == "test accuracy (%)"]
    assert acc_axes
    for ax in acc_axes:
        bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
        for b in bands:  # none, or within the seeds' own values: never 0-100 % from a split
            ys = np.concatenate([p.vertices[:, 1] for p in b.get_paths()])
            assert ys.min() >= 10.0 - 1e-9 and ys.max() <= 98.0 + 1e-9
        shown = _labelled(ax)
        seed_lines = [ln for ln in ax.get_lines() if ln.get_label() == "_nolegend_"
                      and len(ln.get_xdata()) > 1]
        assert len(seed_lines) == 5 * len(shown)  # one thin line per seed
        styles = [(matplotlib.colors.to_hex(ln.get_color()), ln.get_linestyle()) for ln in shown]
        assert len(set(styles)) == len(styles)  # distinct within a panel
    loss_axes = [ax for ax in fig.axes if ax.get_ylabel() == "training loss"]
    assert any(ax.get_yscale() == "log" for ax in loss_axes)  # losses span decades here
    for ax in loss_axes:
        if ax.get_yscale() == "log":
            assert all(min(ln.get_ydata()) > 0 for ln in ax.get_lines() if len(ln.get_ydata()))
    legends = _legends(fig)
    assert legends
    for lg in legends:
        box = lg.get_window_extent()
        assert not any(_overlaps(box, ax.get_window_extent()) for ax in fig.axes)


@pytest.mark.parametrize("name", ["suc", "lenet", "bnn"])
def test_a_tuned_twin_is_dashed_in_its_configurations_panel_in_its_colour(name):
    spec = P.resolve(P.load(), name, "full")
    fig = figures.plot(_split_curves(spec["configs"], tuned=True), spec["title"],
                       spec["configs"])
    seen = 0
    for ax in (a for a in fig.axes if a.get_ylabel() == "test accuracy (%)"):
        lines = {ln.get_label(): ln for ln in _labelled(ax)}
        for label, line in lines.items():
            if label.endswith("_tuned"):
                own = lines[label[:-len("_tuned")]]  # in the same panel
                assert line.get_linestyle() == "--" and own.get_linestyle() == "-"
                assert line.get_color() == own.get_color()
                seen += 1
    assert seen == len(spec["configs"])


def test_coinciding_configurations_stay_distinguishable():
    """lenet's noise_0.1 and noise_0.5 draw the same curve: colour, marker and the
    markers' epochs differ."""
    spec = P.resolve(P.load(), "lenet", "full")
    fig = figures.plot(_split_curves(spec["configs"], epochs=20), spec["title"],
                       spec["configs"])
    ax = next(a for a in fig.axes if a.get_ylabel() == "test accuracy (%)"
              and "noise_0.1" in [ln.get_label() for ln in a.get_lines()])
    a, b = (next(ln for ln in ax.get_lines() if ln.get_label() == n)
            for n in ("noise_0.1", "noise_0.5"))
    assert a.get_marker() != b.get_marker() and a.get_color() != b.get_color()
    assert a.get_markevery() != b.get_markevery()


def test_a_configuration_that_diverged_says_so_in_the_legend_and_is_marked():
    """cnn's relu_full_jam_sign diverged at epoch 1 on every seed: its curves hold epoch 0."""
    spec = P.resolve(P.load(), "cnn", "full")
    curves = fake_curves(spec["configs"], seeds=3)
    curves = curves[(curves["config"] != "relu_full_jam_sign") | (curves["epoch"] == 0)]
    keep = (curves["config"] != "relu_positive_jam_sign") | (curves["seed"] != 1)
    curves = curves[keep | (curves["epoch"] <= 2)]
    fig = figures.plot(curves, spec["title"], spec["configs"])
    labels = [t.get_text() for lg in _legends(fig) for t in lg.get_texts()]
    assert "relu_full_jam_sign (diverged, 3/3 seeds)" in labels
    assert "relu_positive_jam_sign (diverged, 1/3 seeds)" in labels
    assert "relu_true" in labels
    crosses = [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_marker() == "x"
               and len(ln.get_xdata())]
    assert sorted(float(x) for ln in crosses for x in ln.get_xdata()) == [0.0] * 6 + [2.0] * 2


def test_activations_one_panel_per_family_distinct_colour_and_style_legend_outside():
    specs = {n: P.resolve(P.load(), n, "full") for n in ("lenet", "cnn", "bnn")}
    fig = figures.plot_activations(specs)
    fig.canvas.draw()
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in shown][0] == "forward F(x)"
    assert len(shown) == 1 + len({ax.get_title() for ax in shown[1:]})
    for ax in shown:
        lines = _labelled(ax)
        assert len({matplotlib.colors.to_hex(ln.get_color()) for ln in lines}) == len(lines)
        assert len({(ln.get_linestyle(), ln.get_linewidth()) for ln in lines}) == len(lines)
        assert len(ax.collections) <= len(lines)  # a band per stochastic rule, no scatter
        box = ax.get_legend().get_window_extent()
        assert not any(_overlaps(box, other.get_window_extent()) for other in shown)


@pytest.mark.parametrize("names, families", [(("suc",), 1), (("suc", "lenet"), 3)])
def test_activations_with_fewer_families_than_the_grid_has_panels(names, families):
    """A profile's experiments may use a few rule families (a smoke profile): the grid's
    spare panels stay hidden (suc + lenet: 4 panels in a 2 x 3 grid), each family in a panel
    of its own."""
    specs = {n: P.resolve(P.load(), n, "smoke") for n in names}
    fig = figures.plot_activations(specs)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert len(shown) == 1 + families and all(ax.get_title() for ax in shown)


@pytest.mark.parametrize("name", ["suc", "bnn"])
def test_search_panels_hold_each_rule_with_its_reference(name):
    from experiments.analysis import comparisons, search_figures

    spec = P.resolve(P.load(), name, "full")
    panels = search_figures.reference_panels(list(spec["configs"]), spec)
    for _, (ref, *rules) in panels:
        assert rules and all(comparisons.baseline_of(r, spec) == ref for r in rules)
    assert sorted(c for _, m in panels for c in m) == sorted(spec["configs"])
    if name == "bnn":  # one panel per d, each step_constant, step_rectangular and logistic
        assert [t for t, _ in panels] == [f"d = {d}" for d in (8, 16, 32, 64, 128)]
    else:  # written out: the constant rule beside the true derivative it is compared with
        assert panels == [("standard", ["standard", "constant"])]


def test_search_arms_without_a_reference_share_one_panel():
    """The feedback rules name no baseline: one panel of every arm, none drawn as reference."""
    import matplotlib.pyplot as plt

    from experiments.analysis import search_figures

    spec = P.resolve(P.load(), "feedback", "full")
    panels = search_figures.reference_panels(list(spec["configs"]), spec)
    assert panels == [(search_figures.NO_REFERENCE, list(spec["configs"]))]
    arms = {c: {"candidates": [{"lr": 0.1, "val_acc": 0.5, "diverged": 0}], "chosen_lr": 0.1}
            for c in spec["configs"]}
    fig, ax = plt.subplots()
    search_figures._panel(ax, arms, *panels[0])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == list(spec["configs"])  # no "(reference)"
    assert "black" not in {ln.get_color() for ln in ax.get_lines()}


def test_lines_figure_error_bars_stay_within_100_percent():
    spec = P.resolve(P.load(), "bnn", "full")
    metrics, _ = fake_reports("bnn", spec)
    for m in metrics.values():
        m["final_test_acc"] = {"mean": 0.99, "std": 0.05}
    fig = grid_figures.plot_lines(spec, metrics, spec["figures"][0], "t")
    fig.canvas.draw()  # the constrained layout places the legend
    ax = fig.axes[0]
    assert ax.get_ylabel() == "final test accuracy (%)"
    segs = np.concatenate([s for c in ax.collections for s in c.get_segments()])
    assert segs[:, 1].max() == pytest.approx(100.0)
    assert not _overlaps(fig.legends[0].get_window_extent(), ax.get_window_extent())


def test_cosine_legend_is_one_readable_legend_outside_the_panels():
    rows = [(c, 0, step, p, np.cos(step / 10)) for c in ("constant", "rectangular", "triangular")
            for step in range(0, 100, 10) for p in ("0.weight", "0.bias", "3.weight", "all")]
    diag = pd.DataFrame(rows, columns=["config", "seed", "step", "parameter", "cosine"])
    fig = figures.plot_cosine(diag, "t")
    fig.canvas.draw()
    (lg,) = _legends(fig)
    assert [t.get_text() for t in lg.get_texts()] == ["0.weight", "3.weight",
                                                      "all (every parameter)"]
    assert min(t.get_fontsize() for t in lg.get_texts()) >= 9
    box = lg.get_window_extent()
    assert not any(_overlaps(box, ax.get_window_extent()) for ax in fig.axes)


def test_a_diverging_run_puts_only_its_own_loss_panel_on_a_log_scale():
    """cnn's `mode='sign'` readings reach a training loss of ~1e9: on a shared linear scale
    every other loss panel was a flat line at 0."""
    spec = P.resolve(P.load(), "cnn", "full")
    curves = fake_curves(spec["configs"])
    diverging = curves["config"] == "relu_rectangular_jam_sign"
    curves.loc[diverging, "train_loss"] = 1e9
    fig = figures.plot(curves, spec["title"], spec["configs"])
    loss_axes = [ax for ax in fig.axes if ax.get_ylabel() == "training loss"]
    assert len(loss_axes) > 1
    assert [ax.get_yscale() for ax in loss_axes].count("log") == 1
    for ax in loss_axes:
        if ax.get_yscale() == "linear":
            assert ax.get_ylim()[1] < 10  # the other panels keep their own, readable scale
