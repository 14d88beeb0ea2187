"""Grids beyond one machine, rehearsed on this one: a real `mlflow server` and a Dask
scheduler with two workers on 127.0.0.1 (separate processes, bounded in time, torn down
after); the smoke `train@lenet` runs through them and gives the local executor's bytes."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import new_workspace, sh, without_search

OUTPUTS = ("reports/metrics/lenet.json", "reports/runs/lenet.json", "reports/curves/lenet.csv",
           "reports/diagnostics/lenet.csv")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(check, what: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{what} did not come up in {timeout} s")


@pytest.fixture()
def services(tmp_path):
    """mlflow server + dask scheduler + 2 workers on 127.0.0.1; their processes are ended
    (the whole process group) after the test, however it ends."""
    bin_dir = Path(sys.executable).parent
    mlflow_port, dask_port = _free_port(), _free_port()
    procs = []

    def start(args, env=None):
        log = open(tmp_path / f"{Path(args[0]).name}-{len(procs)}.log", "w")
        procs.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True,
                                      env=env or os.environ.copy()))

    start([str(bin_dir / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(mlflow_port),
           "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
           "--artifacts-destination", str(tmp_path / "artifacts"), "--workers", "1"])
    start([str(bin_dir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(dask_port),
           "--no-dashboard"])
    uri = f"http://127.0.0.1:{mlflow_port}"
    try:
        _wait(lambda: urllib.request.urlopen(f"{uri}/health", timeout=2).status == 200,
              "mlflow server")
        yield {"mlflow": uri, "scheduler": f"tcp://127.0.0.1:{dask_port}", "start": start,
               "procs": procs, "bin": bin_dir}
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):  # the group is already gone
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def test_smoke_lenet_on_a_dask_cluster_logs_to_the_server_and_matches_local(
        services, tmp_path_factory):
    ws = new_workspace(tmp_path_factory, "dask")
    repo, env = ws["repo"], ws["env"]
    p = repo / "params.yaml"
    params = yaml.safe_load(p.read_text())
    params["profile"] = "smoke"
    without_search(params, "lenet")
    p.write_text(yaml.safe_dump(params, sort_keys=False))
    n_runs = len(params["experiments"]["lenet"]["profiles"]["smoke"]["select"])
    sh(["dvc", "repro", "data"], repo, env)

    # Workers: the repository and data/ on a "shared filesystem" (this disk), the
    # workspace's code first on the path, runs logged to the server.
    worker_env = {**env, "PYTHONPATH": str(repo), "MLFLOW_TRACKING_URI": services["mlflow"]}
    for _ in range(2):
        services["start"]([str(services["bin"] / "dask"), "worker", services["scheduler"],
                           "--nthreads", "1", "--nworkers", "1", "--no-dashboard",
                           "--local-directory", str(repo / ".dask-worker")], worker_env)
    from distributed import Client

    with Client(services["scheduler"], timeout=60) as client:
        _wait(lambda: len(client.scheduler_info()["workers"]) == 2, "two dask workers")

    on_cluster = sh(["dvc", "repro", "train@lenet"], repo,
                    {**env, "FREEGRAD_DASK_ADDRESS": services["scheduler"],
                     "MLFLOW_TRACKING_URI": services["mlflow"]}).stdout
    assert f"executor=dask at {services['scheduler']}" in on_cluster
    assert on_cluster.count(": trained") == n_runs
    remote = {rel: (repo / rel).read_bytes() for rel in OUTPUTS}

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=services["mlflow"])
    runs = client.search_runs([client.get_experiment_by_name("lenet").experiment_id])
    assert [r.info.status for r in runs] == ["FINISHED"] * n_runs
    owners = {int(r.data.tags["freegrad.owner"].split(":")[1]) for r in runs}
    assert all(_launched_by(pid, services["procs"][2:]) for pid in owners), owners

    local = sh(["dvc", "repro", "-f", "train@lenet"], repo,
               {**env, "FREEGRAD_RETRAIN": "1"}).stdout
    assert "executor=local" in local and local.count(": trained") == n_runs
    assert {rel: (repo / rel).read_bytes() for rel in OUTPUTS} == remote


def _launched_by(pid: int, launchers) -> bool:
    """Whether process ``pid`` descends from one of the ``launchers`` (``dask worker``)."""
    roots = {p.pid for p in launchers}
    while pid > 1:
        if pid in roots:
            return True
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # field 4: the parent's pid
    return False


def test_a_worker_of_another_checkout_refuses_the_units(services, tmp_path_factory):
    """Two checkouts share one venv; the workers import experiments from the other one (whose
    training code differs): every unit is refused with both checkouts named, nothing trains."""
    stage_ws, other_ws = (new_workspace(tmp_path_factory, n) for n in ("stage", "other"))
    for ws in (stage_ws, other_ws):
        p = ws["repo"] / "params.yaml"
        p.write_text(p.read_text().replace("\nprofile: full", "\nprofile: smoke", 1))
    loop = other_ws["repo"] / "experiments" / "training" / "loop.py"
    loop.write_text(loop.read_text() + "\n# another checkout's edit\n")
    repo, env = stage_ws["repo"], stage_ws["env"]
    sh(["dvc", "repro", "data"], repo, env)
    services["start"]([str(services["bin"] / "dask"), "worker", services["scheduler"],
                       "--nthreads", "1", "--nworkers", "1", "--no-dashboard",
                       "--local-directory", str(other_ws["repo"] / ".dask-worker")],
                      {**other_ws["env"], "PYTHONPATH": str(other_ws["repo"])})
    from distributed import Client

    with Client(services["scheduler"], timeout=60) as client:
        _wait(lambda: len(client.scheduler_info()["workers"]) == 1, "one dask worker")
    proc = sh(["dvc", "repro", "train@suc"], repo,
              {**env, "FREEGRAD_DASK_ADDRESS": services["scheduler"]}, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"keyed with the code and data of {repo}" in out, out[-3000:]
    assert f"imports experiments from {other_ws['repo']}" in out
    assert "experiments/training" in out and ": trained" not in out
