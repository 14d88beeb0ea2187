"""Exactly once: a stage killed at any point of a unit's end, then rerun, trains nothing that
was kept and leaves one FINISHED MLflow run per (configuration, seed).

The kill is a real SIGKILL at each point ``FREEGRAD_KILL_AT`` names (``units.KILL_POINTS``:
back from the executor, kept in the run cache, one MLflow run ended), in the smoke
``train@suc`` (2 configurations, their 2 seeds stacked: a unit of 2 runs each)."""

from __future__ import annotations

import collections
import shutil
import subprocess
import sys

import pytest
import yaml

from experiments.training import units
from tests.conftest import new_workspace, sh, without_search


@pytest.fixture(scope="module")
def smoke_suc(tmp_path_factory):
    ws = new_workspace(tmp_path_factory, "once")
    repo, env = ws["repo"], ws["env"]
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["profile"] = "smoke"
    without_search(params, "suc")
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-q", "-m", "copy"], repo, env)
    sh([sys.executable, "-m", "experiments.data", "--only", "ones"], repo, env)
    return ws


def _train(ws, store, kill_at=None) -> subprocess.CompletedProcess:
    env = {**ws["env"], "MLFLOW_TRACKING_URI": f"sqlite:///{store}"}
    if kill_at:
        env[units.KILL_ENV] = kill_at
    return subprocess.run([sys.executable, "-m", "experiments.training", "suc"], cwd=ws["repo"],
                          env=env, capture_output=True, text=True, timeout=600, check=False)


def _finished(store) -> collections.Counter:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{store}")
    runs = client.search_runs([client.get_experiment_by_name("suc").experiment_id])
    return collections.Counter(r.info.run_name for r in runs if r.info.status == "FINISHED")


@pytest.mark.parametrize("point", units.KILL_POINTS)
def test_a_kill_at_each_point_of_a_units_end_leaves_one_finished_run_each(smoke_suc, point,
                                                                           tmp_path):
    shutil.rmtree(smoke_suc["repo"] / ".cache", ignore_errors=True)  # a fresh run cache
    store = tmp_path / "mlruns.db"
    killed = _train(smoke_suc, store, point)
    assert killed.returncode == -9, killed.stdout[-2000:] + killed.stderr[-2000:]
    rerun = _train(smoke_suc, store)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    kept = point in ("stored", "reported")  # the first unit was in the cache at the kill
    assert ("suc/standard/seeds0-1: reused" in rerun.stdout) == kept, rerun.stdout
    assert rerun.stdout.count(": trained") == (1 if kept else 2), rerun.stdout
    names = [f"{c}-seed{s}" for c in ("standard", "constant") for s in (0, 1)]
    assert _finished(store) == collections.Counter(names)  # each once, none twice
