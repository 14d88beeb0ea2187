"""The ``figures`` stage: learning curves from ``reports/curves/<name>.csv``.

    python -m experiments.figures

Separate from training, so restyling a figure never retrains.  Writes
``reports/figures/<name>.png`` and ``.pdf``: test accuracy and training loss
per epoch, mean over seeds with a ±1 std band, one line per configuration.
"""

from __future__ import annotations

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
    axes[0].legend(frameon=False)
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
        fig = plot(pd.read_csv(cpath), spec.get("title", name))
        for ext, meta in (("png", {"Software": None}), ("pdf", {"CreationDate": None})):
            with io.atomic_path(paths.FIGURES / f"{name}.{ext}") as tmp:
                fig.savefig(tmp, format=ext, dpi=150, metadata=meta)
        plt.close(fig)
        print(f"figures: wrote reports/figures/{name}.png and .pdf")
        written += 1
    if written == 0:
        print("error: no curves found in reports/curves/", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
