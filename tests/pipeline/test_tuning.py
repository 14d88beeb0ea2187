"""The learning-rate search (experiments/training/tuning.py): every arm tried at the same grid
with the same budget, on a validation split held out from the training set; the test set is
never read; the chosen rate is recorded per arm and its final runs are the arm's tuned reading."""

from __future__ import annotations

import json

import mlflow
import pytest
import torch

from experiments import config as P
from experiments import data as D
from experiments.config import Experiment
from experiments.results import datasets
from experiments.training import inputs, stage, tuning


@pytest.fixture()
def suc_params(monkeypatch):
    params = P.load()
    monkeypatch.setattr(datasets, "load", lambda name: D.make_ones(**params["data"]["ones"]))
    params["profile"] = "smoke"
    return params


def test_the_validation_split_is_the_end_of_the_training_set_and_drops_the_test_set():
    data = {"train_x": torch.arange(10.0), "train_y": torch.arange(10),
            "test_x": torch.full((4,), -1.0), "test_y": torch.zeros(4), "meta": {}}
    held = inputs.holdout(data, 3)
    assert held["train_x"].tolist() == list(range(7)) and held["test_x"].tolist() == [7, 8, 9]
    assert held["test_y"].tolist() == [7, 8, 9] and held["meta"]["test_n"] == 3
    assert inputs.holdout(data, 0.2)["test_x"].tolist() == [8, 9]
    for bad in (0, 10, 0.0):
        with pytest.raises(P.ParamsError, match="tuning.validation"):
            inputs.holdout(data, bad)


def test_the_search_never_reads_the_test_set(suc_params, monkeypatch, tmp_path):
    """Poisoning the test set (NaN inputs, one label) leaves the search's record unchanged."""
    experiment = Experiment.of(suc_params, "suc")
    clean = inputs.experiment_data(experiment, torch.device("cpu"))
    poisoned = {**clean, "test_x": torch.full_like(clean["test_x"], float("nan")),
                "test_y": torch.zeros_like(clean["test_y"])}
    records = []
    for data in (clean, poisoned):
        def train(exp, data=data):
            return [run for c in exp.spec["configs"] for run in _fit_runs(exp, c, data)]
        records.append(tuning.search(experiment, train, data)[0])
    assert records[0] == records[1]


def _fit_runs(exp, cname, data):
    from experiments.results.records import Run, run_metrics
    from experiments.training import loop

    cfg_data = inputs.configuration_data(exp, data, cname)
    assert not torch.isnan(cfg_data["test_x"]).any()  # evaluated on the validation split
    out = []
    for seed in exp.spec["seeds"]:
        rows = loop.fit(exp.task, exp.spec, exp.config(cname), seed, cfg_data, "cpu")
        out.append(Run(exp.name, cname, seed, rows, run_metrics(rows, 0.9)))
    return out


def test_the_stage_records_every_candidate_and_trains_the_chosen_rate(suc_params, mlflow_uri,
                                                                      tmp_path):
    suc_params["experiments"]["suc"]["profiles"]["smoke"]["tuning"].update(
        lr=[0.001, 0.01], widen=2)  # too small: the best sits at the top edge, so it widens
    details = stage.run_experiment("suc", suc_params, root=tmp_path)
    search = details["tuning"]
    assert search["grid"] == [0.001, 0.01] and search["validation"]["examples"] == 320
    assert search["validation"]["of"] == 1600  # the training set: 2000 less 20 % test
    for cname, arm in search["arms"].items():
        lrs = [c["lr"] for c in arm["candidates"]]
        assert lrs == sorted(lrs) and set(lrs) >= {0.001, 0.01}
        best = max(arm["candidates"], key=lambda c: c["val_acc"])
        assert arm["chosen_lr"] == best["lr"]
        assert len(lrs) > 2, "the best rate sat at the edge of the grid: the grid widens"
        tuned = details["configs"][arm["tuned_config"]]
        assert tuned["lr"] == arm["chosen_lr"]
        assert arm["tuned_config"] == (cname if arm["chosen_lr"] == 0.1 else f"{cname}_tuned")
    client = mlflow.tracking.MlflowClient(mlflow_uri)
    searched = client.search_runs([client.get_experiment_by_name("suc-tuning").experiment_id])
    n_candidates = sum(len(a["candidates"]) for a in search["arms"].values())
    assert len(searched) == n_candidates * len(search["seeds"])
    assert {r.data.tags["phase"] for r in searched} == {"tuning"}
    written = json.loads((tmp_path / "reports" / "runs" / "suc.json").read_text())
    assert written["tuning"] == search


def test_a_tuned_twin_is_made_only_where_the_chosen_rate_differs(suc_params):
    experiment = Experiment.of(suc_params, "suc")
    record = {"arms": {"standard": {"chosen_lr": 1.0, "tuned_config": "standard_tuned"},
                       "constant": {"chosen_lr": 0.1, "tuned_config": "constant"}}}
    tuned = tuning.tuned_experiment(experiment, record)
    assert set(tuned.spec["configs"]) == {"standard", "constant", "standard_tuned"}
    twin = tuned.spec["configs"]["standard_tuned"]
    assert twin["lr"] == 1.0 and twin["tuned_from"] == "standard" and twin["claims"] == []


def test_a_bad_tuning_setting_names_the_key(tmp_path):
    import yaml

    params = P.load()
    params["experiments"]["lenet"]["tuning"]["lr"] = [0.1, 0.01]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    with pytest.raises(P.ParamsError, match=r"experiments.lenet.tuning.lr: expected increasing"):
        P.load(path)
