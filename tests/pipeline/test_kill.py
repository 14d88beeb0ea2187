"""Kill a real `dvc repro train@suc` mid-training (SIGKILL, then SIGINT): nothing partial is
taken as a result, the MLflow runs end KILLED, and the next `dvc repro` reruns cleanly.
Then determinism: a forced rerun gives byte-identical metrics, runs, curves and diagnostics,
and a dvc.lock that differs only in the hash of reports/timings/ (wall times are a DVC output
on purpose: the tables and the paper quote them; they are the one thing not repeatable)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import copy_repo, sh
from tests.pipeline.conftest import _mirror

RESULTS = ("reports/metrics/suc.json", "reports/runs/suc.json", "reports/curves/suc.csv",
           "reports/timings/suc.json", "reports/diagnostics/suc.csv")


def _set_epochs(repo: Path, epochs: int) -> None:
    p = repo / "params.yaml"
    params = yaml.safe_load(p.read_text())
    params["profile"] = "smoke"
    params["experiments"]["suc"]["profiles"]["smoke"]["epochs"] = epochs
    p.write_text(yaml.safe_dump(params, sort_keys=False))


def _kill_mid_training(repo: Path, env: dict, sig: int) -> subprocess.CompletedProcess:
    proc = subprocess.Popen(["dvc", "repro", "train@suc"], cwd=repo, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    seen = []
    deadline = time.time() + 240
    for line in proc.stdout:  # wait until training is well under way
        seen.append(line)
        if "epoch 3/" in line or time.time() > deadline:
            break
    os.killpg(proc.pid, sig)  # the whole group, as a terminal's Ctrl-C or a kill -9 would
    out, _ = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, "".join(seen) + out, "")


def _lock_without_timings(repo: Path) -> dict:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    for stage in lock["stages"].values():
        for part in ("deps", "outs"):
            stage[part] = [e for e in stage.get(part, []) if "timings" not in e["path"]]
    return lock


def _runs(store: Path):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{store / 'mlruns.db'}")
    exp = client.get_experiment_by_name("suc")
    return client.search_runs([exp.experiment_id]) if exp else []


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    mirror = _mirror()
    if mirror is None:
        pytest.skip("no MNIST mirror: set FREEGRAD_DATA_MIRROR")
    repo, store = tmp_path_factory.mktemp("killrepo"), tmp_path_factory.mktemp("killstore")
    copy_repo(repo)
    env = {**os.environ,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "FREEGRAD_DATA_MIRROR": str(mirror), "DVC_NO_ANALYTICS": "1",
           "MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlruns.db'}",
           "GIT_CONFIG_GLOBAL": os.devnull, "FREEGRAD_DEVICE": "cpu"}
    for args in (["git", "init", "-q", "-b", "main"], ["git", "config", "user.name", "t"],
                 ["git", "config", "user.email", "t@example.invalid"]):
        sh(args, repo, env)
    if not (repo / ".dvc" / "config").exists():
        sh(["dvc", "init", "-q"], repo, env)
    _set_epochs(repo, 400)
    sh(["dvc", "repro", "data"], repo, env)
    return {"repo": repo, "store": store, "env": env}


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_killed_stage_leaves_no_result_and_mlflow_run_ends(workspace, sig):
    repo, env = workspace["repo"], workspace["env"]
    done = _kill_mid_training(repo, env, sig)
    assert done.returncode != 0, done.stdout[-2000:]
    assert "epoch 3/400" in done.stdout
    for rel in RESULTS:  # no partial result, no leftover temporary file
        assert not (repo / rel).exists(), rel
        assert not list((repo / rel).parent.glob(f".{Path(rel).name}.*")) if (
            repo / rel).parent.exists() else True
    lock = yaml.safe_load((repo / "dvc.lock").read_text()) if (repo / "dvc.lock").exists() else {}
    assert "train@suc" not in lock.get("stages", {})
    statuses = [r.info.status for r in _runs(workspace["store"])]
    if sig == signal.SIGINT:  # the process saw it: its run ends KILLED at once
        assert "KILLED" in statuses and "RUNNING" not in statuses
    else:  # SIGKILL: nobody can close it now; the next start does (next test)
        assert "RUNNING" in statuses


def test_next_repro_reruns_cleanly_and_repeats_byte_for_byte(workspace):
    repo, env = workspace["repo"], workspace["env"]
    _set_epochs(repo, 2)
    sh(["dvc", "repro", "train@suc"], repo, env)
    statuses = [r.info.status for r in _runs(workspace["store"])]
    assert "RUNNING" not in statuses  # the SIGKILLed run was closed as KILLED
    assert statuses.count("FINISHED") == 4  # smoke: 2 configurations x 2 seeds
    first = {rel: (repo / rel).read_bytes() for rel in RESULTS if "timings" not in rel}
    lock = _lock_without_timings(repo)
    sh(["dvc", "repro", "-f", "train@suc"], repo, env)
    assert {rel: (repo / rel).read_bytes() for rel in first} == first
    assert _lock_without_timings(repo) == lock
