"""The ``figures`` stage: every figure, from the files the train stages wrote.

    python -m experiments.analysis.figures

Separate from training, so restyling a figure never retrains.  Writes, as
``.png`` and ``.pdf`` under ``reports/figures/``:

* ``<name>``: test accuracy (%) and training loss per epoch, a thin line per seed and the
  mean over seeds, a colour and marker per configuration, its tuned twin ``<config>_tuned``
  dashed beside it, a cross where a seed diverged; more than six configurations as small
  multiples (``curve_figures``) (``reports/curves/<name>.csv``);
* ``activations``: every forward and backward rule the configurations use, computed by
  freegrad itself, one panel per rule family; stochastic rules as median and 10-90 % band
  over draws (``rule_figures``);
* ``<name>_<figure>``: each entry of the experiment's ``figures`` in params.yaml, over the
  configurations' grid axes (never their names): a ``heatmap`` of final test accuracy in %
  (``rows`` x ``columns``, a panel per ``panels`` value; e.g. ``cnn_jamming``,
  ``mlp_sweep_grid``) or ``lines`` (against axis ``x``, a line per ``lines`` value;
  ``bnn_accuracy_vs_d``);
* ``<name>_lr``: the learning-rate search, validation accuracy against the rate per arm,
  each rule in a panel with the reference it is compared with (``search_figures``;
  experiments with ``tuning``);
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

from experiments import config  # noqa: E402
from experiments.analysis.curve_figures import MAX_LINES, line_panels, plot  # noqa: E402
from experiments.analysis.grid_figures import PLOTS  # noqa: E402
from experiments.analysis.rule_figures import plot_activations, rules_used  # noqa: E402
from experiments.analysis.search_figures import plot_search  # noqa: E402
from experiments.results import files, paths  # noqa: E402


def save(fig, stem: str) -> None:
    for ext, meta in (("png", {"Software": None}), ("pdf", {"CreationDate": None})):
        with files.atomic_path(paths.LAYOUT.figure(stem, ext)) as tmp:
            fig.savefig(tmp, format=ext, dpi=150, metadata=meta)
    plt.close(fig)
    print(f"figures: wrote reports/figures/{stem}.png and .pdf")


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
        save(plot_search(details, spec, spec["title"]), f"{name}_lr")
    dpath = layout.report("diagnostics", name)
    diag = pd.read_csv(dpath) if dpath.is_file() else []
    if len(diag):
        save(plot_cosine(diag, f"{spec['title']}: gradient direction"), f"{name}_cosine")
    return 1


__all__ = ["MAX_LINES", "line_panels", "plot", "plot_activations", "plot_cosine", "rules_used",
           "save", "experiment_figures", "main"]


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
