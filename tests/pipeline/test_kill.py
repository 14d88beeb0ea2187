"""Kill a real `dvc repro train@suc` mid-training (SIGKILL, then SIGINT): nothing partial is
taken as a result, the MLflow runs end KILLED, and the next `dvc repro` reruns cleanly.
Then determinism: a forced rerun gives byte-identical metrics, runs, curves and diagnostics,
and so the very same dvc.lock.  Wall times, the one thing not repeatable, still go to
reports/timings/, which no stage declares as an output or a dep."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from experiments.results import paths
from tests.conftest import new_workspace, sh, without_search

RESULTS = ("reports/metrics/suc.json", "reports/runs/suc.json", "reports/curves/suc.csv",
           "reports/diagnostics/suc.csv")
TIMINGS = "reports/timings/suc.json"  # written by the stage, but no DVC output


def _set_epochs(repo: Path, epochs: int) -> None:
    p = repo / "params.yaml"
    params = yaml.safe_load(p.read_text())
    params["profile"] = "smoke"
    without_search(params, "suc")
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


def _stage_paths(stage: dict) -> list[str]:
    """Every dep, out, metric and plot path of a dvc.yaml stage (or of a foreach's ``do``)."""
    body = stage.get("do", stage)
    return [next(iter(e)) if isinstance(e, dict) else str(e)
            for kind in ("deps", "outs", "metrics", "plots") for e in body.get(kind) or []]


def test_wall_times_are_no_stage_output_or_dep():
    stages = yaml.safe_load((paths.ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        timed = [p for p in _stage_paths(stage) if p.startswith("reports/timings")]
        assert not timed, f"dvc.yaml stage `{name}` lists {timed}: wall times would enter dvc.lock"
    # Committed as the record of the last run: git must not ignore them.
    for path in sorted(paths.LAYOUT.timings.glob("*.json")):
        ignored = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=paths.ROOT,
                                 check=False).returncode
        assert ignored == 1, f"{path.relative_to(paths.ROOT)} is git-ignored"


def _runs(store: Path):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{store / 'mlruns.db'}")
    exp = client.get_experiment_by_name("suc")
    return client.search_runs([exp.experiment_id]) if exp else []


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    ws = new_workspace(tmp_path_factory, "killrepo")
    _set_epochs(ws["repo"], 400)
    sh(["dvc", "repro", "data"], ws["repo"], ws["env"])
    return ws


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_killed_stage_leaves_no_result_and_mlflow_run_ends(workspace, sig):
    repo, env = workspace["repo"], workspace["env"]
    done = _kill_mid_training(repo, env, sig)
    assert done.returncode != 0, done.stdout[-2000:]
    assert "epoch 3/400" in done.stdout
    for rel in (*RESULTS, TIMINGS):  # no partial result, no leftover temporary file
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
    first = {rel: (repo / rel).read_bytes() for rel in RESULTS}
    lock = (repo / "dvc.lock").read_text()
    assert "reports/timings" not in lock
    (repo / TIMINGS).unlink()
    out = sh(["dvc", "repro", "-f", "train@suc"], repo, {**env, "FREEGRAD_RETRAIN": "1"}).stdout
    assert ": trained" in out and ": reused" not in out, out  # retrained, not replayed
    assert {rel: (repo / rel).read_bytes() for rel in RESULTS} == first
    assert (repo / "dvc.lock").read_text() == lock  # the whole lock, timings nowhere in it
    timings = json.loads((repo / TIMINGS).read_text())
    assert timings["device"] == "cpu" and timings["stage_seconds"] > 0
