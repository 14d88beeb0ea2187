"""Every path of the workbench, anchored at the repository root.

Nothing else (``experiments``, ``paper``) builds a path: stages behave the same whichever
folder DVC runs them from.  ``Layout(root)`` gives the same files under another root (a
copy of the repository, a test's temporary folder); the module constants are
``Layout(ROOT)``'s.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PARAMS = ROOT / "params.yaml"
TASKS = ROOT / "experiments" / "tasks"  # <task>.py: a task's data, model, loss and score

DATA = ROOT / "data"
RAW = DATA / "raw"  # torchvision layout: RAW/<Dataset>/raw/*.gz
PROCESSED = DATA / "processed"  # one <dataset>.pt per dataset (DVC outputs)


class Layout:
    """The generated files of a repository rooted at ``root``."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.params = self.root / "params.yaml"
        self.reports = self.root / "reports"
        self.metrics = self.reports / "metrics"  # <experiment>.json, DVC metrics: mean/std
        self.runs = self.reports / "runs"  # <experiment>.json, settings, per-run metrics
        self.summary = self.reports / "summary"  # <experiment>.json, DVC metrics: final acc.
        self.curves = self.reports / "curves"  # <experiment>.csv, per run and epoch
        self.timings = self.reports / "timings"  # <experiment>.json, wall times (machine)
        self.diagnostics = self.reports / "diagnostics"  # <experiment>.csv, gradient direction
        self.claims_md = self.reports / "claims.md"  # the paper's claims judged
        self.claims_json = self.reports / "claims.json"
        self.tables = self.reports / "tables"  # <experiment>.md / .csv
        self.figures = self.reports / "figures"  # <name>.png / .pdf
        self.paper = self.root / "paper"
        self.paper_md = self.paper / "paper.md"
        self.numbers = self.paper / "generated" / "numbers.yaml"  # the `numbers` stage
        self.paper_pdf = self.paper / "paper.pdf"

    def file(self, rel: str) -> Path:
        """A file named relative to the root (as paper.md and dvc.yaml name them)."""
        return self.root / rel

    def rel(self, path: Path) -> str:
        """``path`` relative to the root, with / (as dvc.yaml and messages name files)."""
        return Path(path).relative_to(self.root).as_posix()

    def table(self, experiment: str, ext: str) -> Path:
        return self.tables / f"{experiment}.{ext}"

    def figure(self, stem: str, ext: str) -> Path:
        return self.figures / f"{stem}.{ext}"

    def run_cache(self) -> Path:
        """Finished runs kept for resuming a killed stage (experiments/training/runcache.py);
        shared,
        like the MLflow store, with `dvc exp run --temp` copies: entries are keyed by
        content.  Git- and DVC-ignored."""
        return store_root(self.root) / ".cache" / "runs"

    def mean_curves(self, experiment: str) -> Path:
        """``reports/curves/<experiment>_mean.csv``: mean test accuracy per configuration
        and epoch (a DVC plot)."""
        return self.curves / f"{experiment}_mean.csv"

    def report(self, kind: str, experiment: str) -> Path:
        """``reports/<kind>/<experiment>.<json|csv>`` (kind: summary, metrics, runs, curves,
        ...)."""
        ext = "csv" if kind in ("curves", "diagnostics") else "json"
        return getattr(self, kind) / f"{experiment}.{ext}"


LAYOUT = Layout(ROOT)


def store_root(root: Path = ROOT) -> Path:
    """The repository that owns the MLflow store.

    ``dvc exp run --temp`` and queued experiments run in a copy under
    ``<repo>/.dvc/tmp/exps/...``; their runs belong in the store of ``<repo>``.
    """
    parts = root.parts
    for i in range(len(parts) - 3, 0, -1):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return root


MLFLOW_DB = store_root() / "mlruns.db"


def processed(dataset: str, root: Path = PROCESSED) -> Path:
    """The data stage's file of ``dataset`` (under ``root``, default data/processed)."""
    return Path(root) / f"{dataset}.pt"


def torchvision_raw(root: Path, folder: str) -> Path:
    """Where torchvision keeps a dataset's original files: <root>/<Dataset>/raw (the layout
    of data/raw and of a mirror)."""
    return Path(root) / folder / "raw"
