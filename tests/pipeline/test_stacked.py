"""Seeds trained stacked (experiments/training/stacked.py) give one-seed-at-a-time's results."""

from __future__ import annotations

import pytest

from experiments import config as P
from experiments import data as D
from experiments.results import datasets
from experiments.tasks import binary_unit as bnn
from experiments.tasks import digits_mlp as mlp
from experiments.tasks import lenet5 as lenet
from experiments.tasks import single_unit as suc
from experiments.training import loop, stacked, stage
from tests.conftest import without_search

TOL = 1e-5  # float rounding of a batched matmul against S separate ones


def _data(module, spec, cfg, params):
    name = spec["dataset"]
    raw = (D.make_ones(**params["data"]["ones"]) if name == "ones" else
           D.make_ones_sets(**params["data"]["ones_bnn"]) if name == "ones_bnn" else
           D.make_digits())
    data = module.prepare(raw, "cpu")
    return module.config_data(data, cfg) if hasattr(module, "config_data") else data


CASES = [("suc", suc, "standard"), ("suc", suc, "constant"), ("mlp", mlp, "constant"),
         ("bnn", bnn, "step_rectangular_d32"), ("bnn", bnn, "logistic_d8")]


@pytest.mark.parametrize("name, module, cname", CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_stacked_equals_one_seed_at_a_time(name, module, cname):
    params = P.load()
    spec = P.resolve(params, name, "full")
    spec["epochs"], spec["seeds"] = 3, [0, 1, 2]
    cfg = spec["configs"][cname]
    data = _data(module, spec, cfg, params)
    assert stacked.eligible(module, spec, cfg, data["meta"]) is None
    one = [loop.fit(module, spec, cfg, s, data, "cpu") for s in spec["seeds"]]
    both = [loop.fit_seeds(module, spec, cfg, spec["seeds"], data, "cpu") for _ in range(2)]
    strip = [[{k: v for k, v in r.items() if k != "seconds"} for r in rows] for rows in both[0]]
    assert strip == [[{k: v for k, v in r.items() if k != "seconds"} for r in rows]
                     for rows in both[1]]  # deterministic run to run
    for rows_one, rows_st in zip(one, both[0], strict=True):
        assert len(rows_one) == len(rows_st) == 4
        for a, b in zip(rows_one, rows_st, strict=True):
            for k in ("train_loss", "test_loss", "train_acc", "test_acc"):
                assert abs(a[k] - b[k]) <= TOL, (k, a, b)
    assert one[0][-1]["train_loss"] != one[1][-1]["train_loss"]  # seeds do differ


def test_what_is_not_stacked():
    params = P.load()
    spec = P.resolve(params, "lenet", "smoke")
    meta = {"classes": 10}
    assert "stochastic" in stacked.eligible(
        mlp, P.resolve(params, "mlp", "smoke"),
        {"forward": "Logistic", "backward": "noise", "rule_params": {"sigma": 0.1}}, meta)
    spec.pop("diagnostics")
    assert "not a sequence" in stacked.eligible(lenet, spec, spec["configs"]["standard"], meta)
    assert "SGD only" in stacked.eligible(mlp, {"optimizer": "adam"}, {}, meta)


def test_run_experiment_with_and_without_stacking(mlflow_uri, tmp_path, monkeypatch):
    params = without_search(P.load(), "suc")  # the search trains one seed: nothing to stack
    params["profile"] = "smoke"
    monkeypatch.setattr(datasets, "load", lambda name: D.make_ones(**params["data"]["ones"]))
    runs = {}
    for flag in (True, False):
        params["experiments"]["suc"]["stack_seeds"] = flag
        runs[flag] = stage.run_experiment("suc", params, root=tmp_path / str(flag))
    for cname, c in runs[True]["configs"].items():
        for seed, m in c["runs"].items():
            other = runs[False]["configs"][cname]["runs"][seed]
            for k, v in m.items():
                assert v == other[k] or abs(v - other[k]) <= TOL, (cname, seed, k)
    import json

    timings = json.loads((tmp_path / "True/reports/timings/suc.json").read_text())
    assert all(c["stacked_seeds"] for c in timings["configs"].values())
