"""MLflow store under faults: concurrent writers, dead processes (unwritable: test_bad_input)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from experiments.results import paths
from experiments.training import tracking

WRITER = textwrap.dedent("""
    import sys, time
    from experiments.training import tracking
    start_at, worker = float(sys.argv[1]), sys.argv[2]
    time.sleep(max(0.0, start_at - time.time()))  # every writer meets a fresh store at once
    for i in range(4):
        with tracking.start("concurrent", f"w{worker}-{i}", {"i": i, "w": worker}, {}) as run:
            for epoch in range(5):
                run.log_epoch(epoch, {"loss": 1.0 / (epoch + 1), "acc": 0.1 * epoch})
        tracking.finish(run.run_id)
    print("ok", worker)
""")

DIES = textwrap.dedent("""
    import os, signal
    from experiments.training import tracking
    with tracking.start("stale", "orphan", {}, {}) as run:
        run.log_epoch(0, {"loss": 1.0})
        os.kill(os.getpid(), signal.SIGKILL)
""")


def _env(uri):
    return {**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONPATH": str(paths.ROOT)}


def _runs(uri, name):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(name)
    return {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}


def test_concurrent_writers_share_one_sqlite_store(tmp_path):
    """Two processes create and fill one new SQLite store at the same moment."""
    import time

    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    start_at = time.time() + 4.0  # after the interpreters have imported mlflow
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(start_at), str(w)],
                              cwd=paths.ROOT, env=_env(uri), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for w in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
        assert "database is locked" not in err
    runs = _runs(uri, "concurrent")
    assert len(runs) == 8
    assert {r.info.status for r in runs.values()} == {"FINISHED"}
    assert all(len(r.data.metrics) == 2 for r in runs.values())
    import sqlite3

    mode = sqlite3.connect(tmp_path / "mlruns.db").execute("PRAGMA journal_mode").fetchone()
    assert mode[0].lower() == "wal"


def test_retry_gives_up_on_other_errors_and_retries_locked(monkeypatch):
    monkeypatch.setattr(tracking.time, "sleep", lambda s: None)
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("(sqlite3.OperationalError) database is locked")
        return "done"

    assert tracking.retry(flaky) == "done" and len(calls) == 3
    with pytest.raises(ValueError):
        tracking.retry(lambda: (_ for _ in ()).throw(ValueError("other")))

    def always():
        raise RuntimeError("database is locked")

    with pytest.raises(RuntimeError):
        tracking.retry(always)


def test_run_of_a_killed_process_is_closed_on_next_start(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    proc = subprocess.run([sys.executable, "-c", DIES], cwd=paths.ROOT, env=_env(uri),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9
    assert _runs(uri, "stale")["orphan"].info.status == "RUNNING"
    monkeypatch.setattr(tracking, "_CLEANED", set())  # as a new process starts
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with tracking.start("stale", "next", {}, {}) as run:
        pass
    tracking.finish(run.run_id)
    runs = _runs(uri, "stale")
    assert runs["orphan"].info.status == "KILLED"
    assert runs["next"].info.status == "FINISHED"
