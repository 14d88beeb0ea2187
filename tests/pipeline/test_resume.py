"""A killed train stage resumes: SIGKILL a real `dvc repro train@lenet` once its first runs
are kept; the next `dvc repro` trains only the missing runs (MLflow counts them), its
outputs are byte-identical to an uninterrupted run's, and an edited dependency retrains."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import yaml

from tests.conftest import new_workspace, sh, without_search

OUTPUTS = ("reports/metrics/lenet.json", "reports/runs/lenet.json", "reports/curves/lenet.csv",
           "reports/diagnostics/lenet.csv")


def _smoke_lenet(repo: Path) -> int:
    """Smoke profile, with runs long enough (a few seconds) to kill the stage between them.
    Returns the number of runs."""
    p = repo / "params.yaml"
    params = yaml.safe_load(p.read_text())
    params["profile"] = "smoke"
    without_search(params, "lenet")
    params["experiments"]["lenet"]["profiles"]["smoke"].update(epochs=2, train_limit=2048)
    p.write_text(yaml.safe_dump(params, sort_keys=False))
    return len(params["experiments"]["lenet"]["profiles"]["smoke"]["select"])


def _finished(store: Path) -> int:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{store / 'mlruns.db'}")
    exp = client.get_experiment_by_name("lenet")
    runs = client.search_runs([exp.experiment_id]) if exp else []
    return sum(r.info.status == "FINISHED" for r in runs)


def _kill_after_first_run(repo: Path, env: dict) -> str:
    proc = subprocess.Popen(["dvc", "repro", "train@lenet"], cwd=repo, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    seen, deadline = [], time.time() + 300
    for line in proc.stdout:
        seen.append(line)
        if ": trained" in line or time.time() > deadline:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=120)
    return "".join(seen) + out


def test_a_killed_stage_trains_only_the_missing_runs(tmp_path_factory):
    ws = new_workspace(tmp_path_factory, "resume")
    repo, env, store = ws["repo"], ws["env"], ws["store"]
    n_runs = _smoke_lenet(repo)
    sh(["dvc", "repro", "data"], repo, env)

    killed = _kill_after_first_run(repo, env)
    assert "[run 1/" in killed and ": trained" in killed, killed[-3000:]
    kept = len(list((repo / ".cache/runs/lenet").glob("*.json")))
    assert 1 <= kept < n_runs, killed[-3000:]
    assert not any((repo / rel).exists() for rel in OUTPUTS)  # DVC took nothing as done
    before = _finished(store)
    assert before == kept

    resumed = sh(["dvc", "repro", "train@lenet"], repo, env).stdout
    assert resumed.count(": reused") == kept and resumed.count(": trained") == n_runs - kept
    assert _finished(store) == n_runs  # the reused runs were not logged again
    outputs = {rel: (repo / rel).read_bytes() for rel in OUTPUTS}

    # Uninterrupted: every run trained again in one go gives the very same bytes.
    retrained = sh(["dvc", "repro", "-f", "train@lenet"], repo,
                   {**env, "FREEGRAD_RETRAIN": "1"}).stdout
    assert retrained.count(": trained") == n_runs and ": reused" not in retrained
    assert {rel: (repo / rel).read_bytes() for rel in OUTPUTS} == outputs
    assert _finished(store) == 2 * n_runs

    # Any change to what the stage depends on changes every key: nothing stale is reused.
    with (repo / "experiments" / "tasks" / "lenet5.py").open("a") as f:
        f.write("\n# an edit: the stage's code changed\n")
    edited = sh(["dvc", "repro", "train@lenet"], repo, env).stdout
    assert edited.count(": trained") == n_runs and ": reused" not in edited
