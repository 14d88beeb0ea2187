"""MLflow tracking: one MLflow experiment per paper experiment, one run per
(configuration, seed).

The default store is ``sqlite:////<repo>/mlruns.db`` with artifacts under
``<repo>/mlruns/`` (both ignored by git and DVC); the path is absolute and
derived from the repository root, so DVC's temporary experiment copies log to
the same store.  ``$MLFLOW_TRACKING_URI`` overrides it (a server, or another
SQLite file, whose artifacts then go to ``mlruns/`` beside that file).

MLflow is for browsing; the DVC metrics files are the source of truth.  A run
that raises ends FAILED; one interrupted (Ctrl-C, SIGTERM) ends KILLED; one that trained
to its end is FINISHED (FAILED when it diverged) by ``finish`` only once the run cache keeps
it (``experiments.training.units``), so a rerun after a kill at any point leaves one
FINISHED run per (configuration, seed).  A run left
RUNNING by a process that died without a word (SIGKILL, a power cut) is closed as
KILLED the next time a stage logs to that MLflow experiment: every run is tagged
with the host and process (pid and start time) that owns it.

Several processes may log to one SQLite store at once (``dvc queue start -j 2``):
the store is created and migrated under a file lock (``<db>.lock``), put in WAL
mode, and every write that meets "database is locked" is retried with a bounded
exponential backoff (``RETRIES`` tries, about 30 s in all).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from experiments.results import paths

RETRIES = 10  # backoff 0.05 s * 2^i (capped at 8 s), with jitter: about 30 s in all
OWNER_TAG = "freegrad.owner"  # "<host>:<pid>:<process start time>"


class TrackingError(RuntimeError):
    """The MLflow store cannot be used (not writable, not reachable)."""


class Terminated(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM, so runs end KILLED like on Ctrl-C."""


def install_signal_handlers() -> None:
    """SIGTERM raises ``Terminated``; SIGINT raises KeyboardInterrupt even when the parent
    started this process with SIGINT ignored (Python then keeps it ignored), so a Ctrl-C
    of the process group always ends the run KILLED."""

    def handler(signum, frame):
        raise Terminated(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{paths.MLFLOW_DB}"


def artifact_root(uri: str | None = None) -> str | None:
    """Where new experiments keep artifacts; None lets a server decide."""
    uri = uri or tracking_uri()
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        return (db.parent / "mlruns").resolve().as_uri()
    return None


def _locked(e: BaseException) -> bool:
    return "database is locked" in str(e) or "database table is locked" in str(e)


def retry(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, retried while SQLite says "database is locked"."""
    for attempt in range(RETRIES):
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            if not _locked(e) or attempt == RETRIES - 1:
                raise
            time.sleep(min(8.0, 0.05 * 2 ** attempt) * (0.5 + random.random()))


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


_READY: set[str] = set()


def prepare_store(uri: str | None = None) -> None:
    """Create (or migrate) a SQLite store once, under a file lock, and put it in WAL mode.

    Raises ``TrackingError`` naming the path when the store cannot be written."""
    uri = uri or tracking_uri()
    db = _sqlite_path(uri)
    if db is None or uri in _READY:
        return
    import sqlite3

    import mlflow
    from filelock import FileLock

    hint = ("set MLFLOW_TRACKING_URI to a writable store, e.g. "
            "MLFLOW_TRACKING_URI=sqlite:////tmp/mlruns.db")
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(db.parent, os.W_OK) or (db.exists() and not os.access(db, os.W_OK)):
            raise PermissionError(f"no write permission on {db if db.exists() else db.parent}")
        with FileLock(str(db) + ".lock", timeout=120):
            mlflow.MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
            con = sqlite3.connect(str(db), timeout=30)
            try:
                con.execute("PRAGMA journal_mode=WAL")
            finally:
                con.close()
    except Exception as e:
        raise TrackingError(f"MLflow store {db} cannot be written ({e}); {hint}") from e
    _READY.add(uri)


def _start_time(pid: int) -> str:
    try:  # field 22 of /proc/<pid>/stat: start time in clock ticks since boot (Linux)
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "?"


def owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{_start_time(os.getpid())}"


def _owner_alive(tag: str) -> bool:
    host, _, rest = tag.partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine's run: not ours to judge
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return started in ("?", _start_time(int(pid)))


def close_stale_runs(client, experiment_id: str) -> list[str]:
    """End as KILLED the RUNNING runs of this host whose process is gone; return their ids."""
    closed = []
    runs = retry(client.search_runs, [experiment_id], "attributes.status = 'RUNNING'",
                 max_results=1000)
    for run in runs:
        tag = run.data.tags.get(OWNER_TAG)
        if tag is not None and not _owner_alive(tag):
            retry(client.set_terminated, run.info.run_id, "KILLED")
            closed.append(run.info.run_id)
    return closed


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


DESCRIPTION_TAG = "mlflow.note.content"  # the experiment's description in the MLflow UI


def _experiment_id(mlflow, name: str, description: str | None = None) -> str:
    """The MLflow experiment ``name`` (created when missing), described by ``description``."""
    exp = retry(mlflow.get_experiment_by_name, name)
    if exp is None:
        try:
            root = artifact_root()
            retry(mlflow.create_experiment, name,
                  artifact_location=f"{root}/{name}" if root else None)
        except Exception:  # created meanwhile by another process
            pass
        exp = retry(mlflow.get_experiment_by_name, name)
    if description and exp.tags.get(DESCRIPTION_TAG) != description:
        retry(mlflow.MlflowClient().set_experiment_tag, exp.experiment_id, DESCRIPTION_TAG,
              description)
    return exp.experiment_id


class MlflowRun:
    """The few calls the training loop makes on one run; cheap (one batch per epoch)."""

    def __init__(self, client, run_id: str):
        self._client = client
        self.run_id = run_id

    def _metrics(self, metrics: dict, step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        retry(self._client.log_batch, self.run_id,
              metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])

    def log_epoch(self, step: int, metrics: dict) -> None:
        self._metrics(metrics, step)

    def log_summary(self, metrics: dict) -> None:
        """The run's own results (final and best test accuracy, epochs to target...), as
        metrics without a step: the MLflow runs list can show them as columns."""
        self._metrics({k: v for k, v in metrics.items() if v is not None}, 0)

    def log_artifact(self, path: Path) -> None:
        retry(self._client.log_artifact, self.run_id, str(path))

    def set_tag(self, key: str, value) -> None:
        retry(self._client.set_tag, self.run_id, key, str(value))


_CLEANED: set[tuple[str, str]] = set()


@contextmanager
def start(experiment: str, run_name: str, params: dict, tags: dict,
          description: str | None = None) -> Iterator[MlflowRun]:
    """One MLflow run: FAILED on error, KILLED on interrupt, and left RUNNING when the block
    ends normally: ``finish`` ends it once its result is kept, so a run is reported finished
    only when a rerun would reuse it.  ``description``: the MLflow experiment's (set when it
    differs)."""
    import mlflow
    from mlflow.entities import Param

    uri = tracking_uri()
    prepare_store(uri)
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp_id = _experiment_id(mlflow, experiment, description)
    if (uri, exp_id) not in _CLEANED:  # once per process and experiment
        close_stale_runs(client, exp_id)
        _CLEANED.add((uri, exp_id))
    run = retry(client.create_run, exp_id, run_name=run_name,
                tags={**{k: str(v) for k, v in tags.items()}, OWNER_TAG: owner()})
    run_id = run.info.run_id
    try:
        retry(client.log_batch, run_id,
              params=[Param(k, str(v)[:6000]) for k, v in flatten(params).items()])
        yield MlflowRun(client, run_id)
    except KeyboardInterrupt:
        retry(client.set_terminated, run_id, "KILLED")
        raise
    except BaseException:
        retry(client.set_terminated, run_id, "FAILED")
        raise


def finish(run_id: str, status: str = "FINISHED") -> bool:
    """End run ``run_id`` with ``status`` (FINISHED, or FAILED for a diverged run) unless it
    has it already; False when this store has no such run (its runs were deleted)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri())
    try:
        current = retry(client.get_run, run_id).info.status
    except mlflow.exceptions.MlflowException:
        return False
    if current != status:
        retry(client.set_terminated, run_id, status)
    return True


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
