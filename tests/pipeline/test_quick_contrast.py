"""The quick profile shows the full profile's headline contrast (issues 16.9 and 12.5): what
learns and what stays at chance after the quick profile's epochs is what learns and what stays
at chance after the full profile's.

Where the quick profile trains on all of the training set with the full profile's seeds, its
runs are the first epochs of the full runs (seeded, one thread), so the committed full-profile
curves say what a quick run shows; two real quick trainings check that premise on the two
slowest starters (LeNet-5 at lr 0.01: a plateau at chance before it learns)."""

from __future__ import annotations

import functools
import json

import pandas as pd
import pytest

from experiments import config as P
from experiments import data as D
from experiments.results import datasets, paths
from experiments.training import stage
from tests.conftest import without_search

CHANCE = 0.1  # ten classes
LEARNED = 2 * CHANCE  # above twice chance: the run has left the plateau


def quick_profile(name: str) -> dict:
    return P.load()["experiments"][name]["profiles"]["quick"]


@pytest.mark.parametrize("name", ["lenet", "cnn", "cnn_fashion"])
def test_the_quick_runs_already_split_the_configurations_as_the_full_runs_do(name):
    """Per configuration and quick seed: left chance after the quick profile's epochs exactly
    when the full run of that seed had left it at its end."""
    quick = quick_profile(name)
    assert "train_limit" not in quick, "quick must see the full runs' training steps"
    curves = pd.read_csv(paths.LAYOUT.curves / f"{name}.csv")
    runs = curves[curves.config.isin(quick["select"]) & curves.seed.isin(quick["seeds"])]
    full_final = runs.sort_values("epoch").groupby(["config", "seed"]).test_acc.last()
    quick_end = runs[runs.epoch == quick["epochs"]].set_index(["config", "seed"]).test_acc
    assert len(full_final) == len(quick["select"]) * len(quick["seeds"]), "a quick run is missing"
    split = {run: (full_final[run] > LEARNED, quick_end[run] > LEARNED) for run in full_final.index}
    assert {full for full, _ in split.values()} == {True, False}, f"no contrast to show: {split}"
    assert all(full == quick_shows for full, quick_shows in split.values()), split


def train_quick(name, configs, mirror, tmp_path, monkeypatch) -> dict[str, float]:
    """Train `configs` of `name` with its quick profile on the mirror's data; final accuracy."""
    params = P.load()
    params["profile"] = "quick"
    params["data"]["mirror"] = str(mirror)
    experiment = params["experiments"][name]
    quick = experiment["profiles"]["quick"]
    assert set(configs) <= set(quick["select"])
    quick.update(seeds=quick["seeds"][:1], select=configs)
    quick.pop("diagnostics", None)
    without_search(params, name)  # the first epochs of the paper-setting runs
    processed = tmp_path / "processed"
    D.write_datasets(params, processed, tmp_path / "raw", only=(experiment["dataset"],))
    monkeypatch.setattr(datasets, "load", functools.partial(datasets.load, root=processed))
    monkeypatch.setenv("FREEGRAD_RETRAIN", "1")
    stage.run_experiment(name, params, root=tmp_path)
    metrics = json.loads((tmp_path / "reports" / "metrics" / f"{name}.json").read_text())
    return {c: m["final_test_acc"]["mean"] for c, m in metrics.items()}


def test_lenets_quick_profile_shows_what_learns_and_what_does_not(mirror, tmp_path, mlflow_uri,
                                                                   monkeypatch):
    final = train_quick("lenet", ["standard", "constant"], mirror, tmp_path, monkeypatch)
    assert final["constant"] > 0.5, final  # full profile, seed 1: 73 % after 8 epochs
    assert final["standard"] < 0.15, final  # chance, 10 classes (full profile: 10.5 % at 30)


def test_jammings_quick_profile_leaves_the_plateau_with_jammed_gradients(mirror, tmp_path,
                                                                         mlflow_uri, monkeypatch):
    final = train_quick("cnn", ["relu_full_jam", "logistic_full_jam"], mirror, tmp_path,
                        monkeypatch)
    assert final["relu_full_jam"] > 0.5, final  # full profile's seed 1 after 6 epochs: 85 %
    assert final["logistic_full_jam"] < 0.15, final  # chance, as in the full profile
