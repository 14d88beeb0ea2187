"""A loss that becomes NaN stops that run (MLflow FAILED) and is reported, not dropped."""

from __future__ import annotations

import json

import pytest

from experiments import config as P
from experiments import data as D
from experiments.analysis import tables
from experiments.results import datasets
from experiments.tasks import single_unit as suc
from experiments.training import loop, stage


@pytest.fixture()
def diverging_suc(monkeypatch):
    """``suc`` whose ``constant`` configuration turns NaN after a few training steps."""
    build = suc.build_model

    def build_model(spec, cfg, meta):
        model = build(spec, cfg, meta)
        if cfg["backward"] == "d(Linear)":
            calls = [0]

            def poison(module, args, out):
                calls[0] += module.training
                return out * float("nan") if calls[0] > 30 else out

            model.register_forward_hook(poison)
        return model

    monkeypatch.setattr(suc, "build_model", build_model)
    params = P.load()
    monkeypatch.setattr(datasets, "load", lambda name: D.make_ones(**params["data"]["ones"]))
    params["profile"] = "smoke"
    params["experiments"]["suc"]["stack_seeds"] = False  # the hook lives on one seed's model
    return params


def test_nan_loss_stops_the_run_and_is_reported(diverging_suc, mlflow_uri, tmp_path, caplog):
    details = stage.run_experiment("suc", diverging_suc, root=tmp_path)
    seeds = details["settings"]["seeds"]
    bad, good = details["configs"]["constant"], details["configs"]["standard"]
    assert bad["diverged"] == len(seeds) and good["diverged"] == 0
    assert all(r["diverged_at_epoch"] == 1 and r["final_test_acc"] is None
               for r in bad["runs"].values())
    assert good["summary"]["final_test_acc"]["mean"] > 0.5
    metrics = json.loads((tmp_path / "reports/metrics/suc.json").read_text())
    assert metrics["constant"]["final_test_acc"] == {"mean": None, "std": None}
    assert "diverged" in caplog.text and "constant seed=0" in caplog.text
    # the table says it in every metric cell, never "n/a"
    header, rows = tables.experiment_table(metrics, details)
    row = next(r for r in rows if r[0] == "constant")
    n = len(seeds)
    assert row[header.index("Final test acc. (%)")] == f"diverged ({n}/{n} seeds)"
    assert row[header.index("Final test loss")] == f"diverged ({n}/{n} seeds)"
    assert not any("n/a" in cell for r in rows for cell in r)
    assert "diverged_seeds" in tables.numeric_rows(metrics, details)[0]
    # MLflow: FAILED, tagged with the reason
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=mlflow_uri)
    exp = client.get_experiment_by_name("suc")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    assert runs["constant-seed0"].info.status == "FAILED"
    assert "nan" in runs["constant-seed0"].data.tags["diverged"]
    assert runs["standard-seed0"].info.status == "FINISHED"


def test_stacked_divergence_falls_back_to_one_seed_at_a_time(diverging_suc, mlflow_uri,
                                                             tmp_path, monkeypatch):
    def diverges(*args, **kwargs):
        raise loop.Diverged(1, 1, float("nan"), [])

    monkeypatch.setattr(loop, "fit_seeds", diverges)
    diverging_suc["experiments"]["suc"]["stack_seeds"] = True
    details = stage.run_experiment("suc", diverging_suc, root=tmp_path)
    assert details["configs"]["constant"]["diverged"] == len(details["settings"]["seeds"])
    assert details["configs"]["standard"]["diverged"] == 0


def test_fit_raises_diverged_with_the_rows_so_far(diverging_suc):
    spec = P.resolve(diverging_suc, "suc", "smoke")
    cfg = spec["configs"]["constant"]
    data = suc.prepare(datasets.load("ones"), "cpu")
    with pytest.raises(loop.Diverged) as err:
        loop.fit(suc, spec, cfg, 0, data, "cpu")
    assert err.value.epoch == 1 and len(err.value.rows) == 1  # epoch 0 only
    assert "loss nan at epoch 1" in str(err.value)
