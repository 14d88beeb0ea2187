"""A rule parameter that follows a schedule of the optimiser step (params.yaml's
``rule_params: {b: {schedule: linear, ...}}``): it advances one step per optimiser step, its
values in force are logged to MLflow per epoch (``rule/<param>``), and the seeds train one at a
time on the autograd loop (stacking and the C++ LeNet-5 step refuse it)."""

from __future__ import annotations

import logging
import math

import pytest

from experiments import config as P
from experiments import data as D
from experiments.results import datasets
from experiments.tasks import single_unit as suc
from experiments.tasks import wide_lenet
from experiments.training import binding, loop, stacked, stage

NARROWING = {"schedule": "linear", "start": 4.0, "end": 0.5, "steps": 100}
EPOCHS, BATCH = 3, 32


def _narrowing_b(t: int) -> float:
    """The schedule's formula: start + (end - start) * min(t, steps) / steps."""
    return 4.0 + (0.5 - 4.0) * min(t, 100) / 100


def _window(b) -> dict:
    return {"backward": "rectangular", "rule_params": {"a": -4.0, "b": b}}


@pytest.fixture()
def scheduled_params(monkeypatch) -> dict:
    """params.yaml whose ``suc`` compares a rectangular window narrowing over training with
    the same window fixed: seeds 0 and 1, three epochs, stacked where eligible."""
    params = P.load()
    monkeypatch.setattr(datasets, "load", lambda name: D.make_ones(**params["data"]["ones"]))
    spec = params["experiments"]["suc"]
    spec.update(epochs=EPOCHS, batch_size=BATCH, seeds=[0, 1], stack_seeds=True,
                profiles={}, grids=[{
                    "name": "{rule}", "forward": "Logistic", "provenance": "test",
                    "axes": {"rule": {"narrowing": _window(NARROWING), "fixed": _window(4.0)}}}])
    params["profile"] = "full"
    return params


def _steps_per_epoch(params: dict) -> int:
    ones = params["data"]["ones"]
    return math.ceil(round(ones["n"] * (1 - ones["test_fraction"])) / BATCH)


def _runs(mlflow_uri: str) -> dict:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=mlflow_uri)
    exp = client.get_experiment_by_name("suc")
    return client, {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}


def test_a_narrowing_window_trains_and_logs_its_schedule(scheduled_params, mlflow_uri, tmp_path,
                                                         caplog):
    caplog.set_level(logging.INFO, logger="experiments.training")
    details = stage.run_experiment("suc", scheduled_params, root=tmp_path)
    client, runs = _runs(mlflow_uri)
    per_epoch = _steps_per_epoch(scheduled_params)
    for seed in (0, 1):
        run_id = runs[f"narrowing-seed{seed}"].info.run_id
        history = sorted((m.step, m.value) for m in client.get_metric_history(run_id, "rule/b"))
        assert history == [(e, _narrowing_b(e * per_epoch)) for e in range(1, EPOCHS + 1)]
        assert {m.value for m in client.get_metric_history(run_id, "rule/a")} == {-4.0}
        logged = runs[f"narrowing-seed{seed}"].data.params  # the schedule, as params has it
        assert {k: logged[f"rule.rule_params.b.{k}"] for k in NARROWING} == {
            k: str(v) for k, v in NARROWING.items()}
    assert "rule/b" not in runs["fixed-seed0"].data.metrics  # nothing scheduled, nothing logged
    narrowing, fixed = (details["configs"][c]["runs"] for c in ("narrowing", "fixed"))
    assert narrowing != fixed  # the same rule, the same seeds: only the schedule differs
    assert "narrowing: seeds trained one at a time (rule parameter(s) ['b'] follow a " \
           "schedule" in caplog.text
    header = (tmp_path / "reports/curves/suc.csv").read_text().splitlines()[0]
    assert header == "config,seed,epoch,train_loss,train_acc,test_loss,test_acc"


def test_the_clock_counts_optimiser_steps_and_diagnostics_read_it():
    params = P.load()
    spec = {**P.resolve(params, "suc", "smoke"), "epochs": 2, "batch_size": BATCH,
            "diagnostics": {"every": 10}}
    cfg = {**spec["configs"]["constant"], **_window(NARROWING)}
    data = suc.prepare(D.make_ones(**params["data"]["ones"]), "cpu")
    made = {}

    def diagnostics(model, clock):
        made["clock"] = clock
        made["diag"] = binding.make_diagnostics(spec, cfg, 0, model, clock=clock)
        return made["diag"]

    rows = loop.fit(suc, spec, cfg, 0, data, "cpu", diagnostics=diagnostics)
    per_epoch = _steps_per_epoch(params)
    assert made["clock"].t == 2 * per_epoch
    assert made["diag"].use_kwargs["clock"] is made["clock"] and made["diag"].history
    assert [r["rule/b"] for r in rows] == [_narrowing_b(e * per_epoch) for e in range(3)]
    fixed = loop.fit(suc, spec, {**cfg, **_window(4.0)}, 0, data, "cpu")
    assert set(fixed[0]) == {"epoch", "train_loss", "train_acc", "test_loss", "test_acc",
                             "seconds"}  # an unscheduled run's rows are as they were


def test_stacking_and_the_c_step_refuse_a_schedule():
    params = P.load()
    spec = P.resolve(params, "suc", "smoke")
    cfg = {**spec["configs"]["constant"], **_window(NARROWING)}
    meta = D.make_ones(**params["data"]["ones"])["meta"]
    assert "['b'] follow a schedule" in stacked.eligible(suc, spec, cfg, meta)
    assert stacked.eligible(suc, spec, {**cfg, **_window(4.0)}, meta) is None
    member = wide_lenet.Member.from_config({**cfg, "forward": "ReLU"}, 0)
    with pytest.raises(ValueError, match=r"\['b'\] follow a schedule"):
        wide_lenet.check_members([member])

