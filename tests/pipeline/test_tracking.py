from pathlib import Path

import pytest

from experiments.results import paths
from experiments.training import tracking


def _runs(uri):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("unit")
    return {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}


def test_default_store_is_absolute_sqlite_at_repo_root(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.tracking_uri() == f"sqlite:///{paths.ROOT / 'mlruns.db'}"
    assert tracking.tracking_uri().startswith("sqlite:////")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.tracking_uri() == "http://127.0.0.1:5000"


def test_dvc_temporary_copies_log_to_the_main_store():
    main = Path("/some/repo")
    assert paths.store_root(main / ".dvc" / "tmp" / "exps" / "tmpab12") == main
    assert paths.store_root(main) == main


def test_run_statuses(mlflow_uri):
    with tracking.start("unit", "ok", {"a": 1, "rule": {"b": 2}}, {"profile": "smoke"}) as run:
        run.log_epoch(1, {"test_acc": 0.5})
    assert _runs(mlflow_uri)["ok"].info.status == "RUNNING"  # until its result is kept
    assert tracking.finish(run.run_id) and tracking.finish(run.run_id)  # once is enough
    assert not tracking.finish("0" * 32)  # no such run in this store
    with pytest.raises(RuntimeError):
        with tracking.start("unit", "crash", {}, {}):
            raise RuntimeError("boom")
    with pytest.raises(KeyboardInterrupt):
        with tracking.start("unit", "interrupted", {}, {}):
            raise KeyboardInterrupt
    with pytest.raises(tracking.Terminated):
        with tracking.start("unit", "sigterm", {}, {}):
            raise tracking.Terminated("signal 15")
    runs = _runs(mlflow_uri)
    assert runs["ok"].info.status == "FINISHED"
    assert runs["ok"].data.params == {"a": "1", "rule.b": "2"}
    assert runs["ok"].data.tags["profile"] == "smoke"
    assert runs["crash"].info.status == "FAILED"
    assert runs["interrupted"].info.status == "KILLED"
    assert runs["sigterm"].info.status == "KILLED"
    # artifacts live beside the SQLite file, not in the working directory
    assert runs["ok"].info.artifact_uri.startswith(
        (Path(mlflow_uri[len("sqlite:///"):]).parent / "mlruns").as_uri())
