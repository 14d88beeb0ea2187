"""MLflow tracking: one MLflow experiment per paper experiment, one run per
(configuration, seed).

The default store is ``sqlite:////<repo>/mlruns.db`` with artifacts under
``<repo>/mlruns/`` (both ignored by git and DVC); the path is absolute and
derived from the repository root, so DVC's temporary experiment copies log to
the same store.  ``$MLFLOW_TRACKING_URI`` overrides it (a server, or another
SQLite file, whose artifacts then go to ``mlruns/`` beside that file).

MLflow is for browsing; the DVC metrics files are the source of truth.  A run
that raises ends FAILED; one interrupted (Ctrl-C, SIGTERM) ends KILLED.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from experiments import paths


class Terminated(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM, so runs end KILLED like on Ctrl-C."""


def install_sigterm_handler() -> None:
    def handler(signum, frame):
        raise Terminated(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{paths.MLFLOW_DB}"


def artifact_root(uri: str | None = None) -> str | None:
    """Where new experiments keep artifacts; None lets a server decide."""
    uri = uri or tracking_uri()
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        return (db.parent / "mlruns").resolve().as_uri()
    return None


def git_commit(root: Path = paths.ROOT) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if out.returncode != 0:
        return "unknown"
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def flatten(d: dict, prefix: str = "") -> dict:
    flat = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            flat.update(flatten(v, key + "."))
        else:
            flat[key] = v
    return flat


def _experiment_id(mlflow, name: str) -> str:
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        root = artifact_root()
        return mlflow.create_experiment(name, artifact_location=f"{root}/{name}" if root else None)
    except Exception:  # created meanwhile by another process
        exp = mlflow.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


class Run:
    """The few calls the training loop makes; cheap (one batch per epoch)."""

    def __init__(self, mlflow, run_id: str):
        self._mlflow = mlflow
        self.run_id = run_id

    def log_epoch(self, step: int, metrics: dict) -> None:
        self._mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)

    def log_artifact(self, path: Path) -> None:
        self._mlflow.log_artifact(str(path))


@contextmanager
def start(experiment: str, run_name: str, params: dict, tags: dict) -> Iterator[Run]:
    """One MLflow run: FINISHED on success, FAILED on error, KILLED on interrupt."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    exp_id = _experiment_id(mlflow, experiment)
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name,
                          tags={k: str(v) for k, v in tags.items()}) as active:
        try:
            mlflow.log_params({k: str(v)[:6000] for k, v in flatten(params).items()})
            yield Run(mlflow, active.info.run_id)
        except KeyboardInterrupt:
            mlflow.end_run("KILLED")
            raise


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Where the MLflow store is")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--uri", action="store_true", help="print the tracking URI")
    group.add_argument("--artifacts", action="store_true", help="print the artifact root")
    args = parser.parse_args(argv)
    if args.uri:
        print(tracking_uri())
    else:
        print(artifact_root() or "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
