import contextlib
import json

import pytest

from experiments import config as P
from experiments import data as D
from experiments.results import records
from experiments.tasks import single_unit as suc
from experiments.training import binding, environment, loop, run


def test_true_derivative_needs_no_rule_block():
    assert isinstance(binding.rule_context({"forward": "Logistic", "backward": "d(Logistic)"}),
                      contextlib.nullcontext)
    assert isinstance(binding.rule_context({"forward": "Tanh", "backward": None}),
                      contextlib.nullcontext)
    assert not isinstance(binding.rule_context({"forward": "Logistic", "backward": "d(Linear)"}),
                          contextlib.nullcontext)


def test_run_metrics():
    rows = [dict(epoch=e, test_acc=a, train_loss=1.0 / (e + 1), test_loss=0.5)
            for e, a in enumerate([0.5, 0.8, 0.96, 0.94])]
    m = run.run_metrics(rows, 0.95)
    assert m["epochs_to_target"] == 2 and m["best_test_acc"] == 0.96
    assert m["final_test_acc"] == 0.94
    assert run.run_metrics(rows, 0.99)["epochs_to_target"] is None
    assert records.summarize([1.0, 3.0, None]) == {"mean": 2.0, "std": 1.414214, "n": 2}


@pytest.mark.parametrize("config", ["standard", "constant"])
def test_fit_is_repeatable_and_learns(config):
    params = P.load()
    spec = P.resolve(params, "suc", "smoke")
    spec["epochs"] = 3
    cfg = spec["configs"][config]
    raw = D.make_ones(**params["data"]["ones"])
    data = suc.prepare(raw, environment.pick_device())
    a = loop.fit(suc, spec, cfg, 0, data, "cpu")
    b = loop.fit(suc, spec, cfg, 0, data, "cpu")
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in a]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in b]
    assert a[-1]["train_loss"] < a[0]["train_loss"]
    json.dumps(run.run_metrics(a, 0.9), allow_nan=False)
