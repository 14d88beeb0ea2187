"""Every path of the workbench, anchored at the repository root.

Nothing else in ``experiments`` builds paths from the working directory, so
stages behave the same whichever folder DVC runs them from.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params.yaml"
TASKS = ROOT / "experiments" / "tasks"  # <task>.py: a task's data, model, loss and score

DATA = ROOT / "data"
RAW = DATA / "raw"  # torchvision layout: RAW/<Dataset>/raw/*.gz
PROCESSED = DATA / "processed"  # one <dataset>.pt per dataset (DVC outputs)

REPORTS = ROOT / "reports"
METRICS = REPORTS / "metrics"  # <experiment>.json, DVC metrics: mean/std per configuration
RUNS = REPORTS / "runs"  # <experiment>.json, settings, provenance and per-run metrics
CURVES = REPORTS / "curves"  # <experiment>.csv, DVC plots (per-epoch curves)
TIMINGS = REPORTS / "timings"  # <experiment>.json, wall times (machine dependent)
DIAGNOSTICS = REPORTS / "diagnostics"  # <experiment>.csv, gradient-direction diagnostics
CLAIMS_MD = REPORTS / "claims.md"  # the paper's claims judged from the metrics
CLAIMS_JSON = REPORTS / "claims.json"
TABLES = REPORTS / "tables"  # <experiment>.md / .tex
FIGURES = REPORTS / "figures"  # <experiment>.png / .pdf


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
MLFLOW_ARTIFACTS = store_root() / "mlruns"
# Finished runs kept for resuming a killed stage (experiments/runcache.py); shared, like
# the MLflow store, with `dvc exp run --temp` copies: entries are keyed by content.
RUN_CACHE = store_root() / ".cache" / "runs"


def processed(dataset: str) -> Path:
    return PROCESSED / f"{dataset}.pt"
