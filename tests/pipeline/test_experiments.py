"""Models, per-configuration settings, diagnostics and claims, without DVC."""

from __future__ import annotations

import json

import freegrad as fg
import pytest
import torch

from experiments import config as P
from experiments import data as D
from experiments.analysis import claims
from experiments.results import paths, records
from experiments.tasks import binary_unit as bnn
from experiments.tasks import digits_mlp as mlp
from experiments.tasks import lenet5 as lenet
from experiments.tasks import models
from experiments.training import binding, inputs, loop


def _cfg(forward="Logistic", backward=None, **kw):
    return {"forward": forward, "backward": backward or f"d({forward})", "forward_params": {},
            "rule_params": {}, "scope": "activations", "provenance": "test", **kw}


def test_lenet5_has_the_papers_layers_and_61706_parameters():
    model = lenet.build_model({}, _cfg(), {"classes": 10})
    assert models.n_parameters(model) == 61_706
    convs = [m for m in model if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (1, 6, (5, 5), (2, 2)), (6, 16, (5, 5), (0, 0))]
    fcs = [(m.in_features, m.out_features) for m in model if isinstance(m, torch.nn.Linear)]
    assert fcs == [(400, 120), (120, 84), (84, 10)]
    assert sum(isinstance(m, torch.nn.AvgPool2d) for m in model) == 2
    acts = [m for m in model if isinstance(m, fg.Activation)]
    assert len(acts) == 4
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_mlp_and_single_units():
    m = mlp.build_model({"model": {"hidden": 64}}, _cfg(), {"classes": 10})
    assert [(x.in_features, x.out_features) for x in m if isinstance(x, torch.nn.Linear)] == [
        (64, 64), (64, 10)]
    assert models.n_parameters(m) == 64 * 64 + 64 + 64 * 10 + 10
    unit = bnn.build_model({}, _cfg("Heaviside", "d(Linear)", d=32), {"d": 32})
    assert unit[0].in_features == 32 and unit[0].out_features == 1


def test_bnn_uses_the_heaviside_forward():
    params = P.load()
    spec = P.resolve(params, "bnn", "full")
    cfg = spec["configs"]["step_rectangular_d16"]
    assert cfg["forward"] == "Heaviside" and cfg["d"] == 16
    model = bnn.build_model(spec, cfg, {"d": 16})
    act = model[1]
    assert isinstance(act, fg.Activation)
    out = model(torch.randn(50, 16))
    assert set(out.unique().tolist()) <= {0.0, 1.0}  # a step: binary outputs
    # With no rule its gradient is the true one, 0; the surrogate makes it trainable.
    x = torch.randn(8, 16)
    model(x).sum().backward()
    assert model[0].weight.grad.abs().sum() == 0
    model.zero_grad()
    with binding.rule_context(cfg):
        model(x).sum().backward()
    assert model[0].weight.grad.abs().sum() > 0


def test_bnn_data_has_one_set_per_d():
    ones = D.make_ones_sets(d=[8, 16], n=256, tau=0.5, test_fraction=0.25, seed=0)
    data = bnn.prepare(ones, torch.device("cpu"))
    s = bnn.config_data(data, {"d": 16})
    assert s["train_x"].shape == (192, 16) and s["test_y"].shape == (64, 1)
    assert torch.equal(s["train_y"][:, 0], (s["train_x"].mean(1) > 0.5).float())


def test_per_config_batch_size_lr_and_limits():
    spec = {"batch_size": 64, "lr": 0.01, "train_limit": 100}
    assert loop.setting(spec, {"batch_size": 16}, "batch_size") == 16
    assert loop.setting(spec, {}, "lr") == 0.01
    data = {"train_x": torch.arange(500), "train_y": torch.arange(500),
            "test_x": torch.arange(50), "test_y": torch.arange(50), "meta": {}}
    small = inputs.limit(data, spec)
    assert torch.equal(small["train_x"], torch.arange(100)) and len(small["test_x"]) == 50
    assert small["meta"] == {"train_n": 100, "test_n": 50}


def _digits_spec(**over):
    params = P.load()
    spec = P.resolve(params, "mlp", "smoke")
    spec.update(over)
    return spec


def test_diagnostics_measure_against_the_true_gradient():
    spec = _digits_spec(epochs=1, diagnostics={"every": 5, "seeds": [0]})
    cfg = spec["configs"]["constant"]
    data = mlp.prepare(D.make_digits(), torch.device("cpu"))
    holder = {}

    def factory(model, clock):
        holder["d"] = binding.make_diagnostics(spec, cfg, 0, model)
        return holder["d"]

    rows_with = loop.fit(mlp, spec, cfg, 0, data, "cpu", diagnostics=factory)
    rows_without = loop.fit(mlp, spec, cfg, 0, data, "cpu")
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in rows_with]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in rows_without]
    steps = [s for s, _ in holder["d"].history]
    assert steps == list(range(0, 23, 5))  # 1437 examples / 64 = 23 steps
    rows = binding.diagnostics_rows("constant", 0, holder["d"].history)
    first = [r for r in rows if r["step"] == 0]
    assert {r["parameter"] for r in first} == {"0.weight", "0.bias", "2.weight", "2.bias", "all"}
    out_layer = next(r for r in first if r["parameter"] == "2.weight")
    # The rule acts on the hidden activation only: the output layer's gradient is untouched.
    assert out_layer["cosine"] == pytest.approx(1.0)
    assert out_layer["norm_ratio"] == pytest.approx(1.0)
    hidden = next(r for r in first if r["parameter"] == "0.weight")
    assert 0.0 < hidden["cosine"] < 1.0 and hidden["norm_ratio"] > 1.0
    assert binding.diagnosed(spec, cfg, "constant", 0)
    assert not binding.diagnosed(spec, spec["configs"]["standard"], "standard", 0)


# --- claims ------------------------------------------------------------------------------

SETTINGS = {"metric": "final_test_acc", "tolerance": 0.01, "k_std": 2.0, "min_baseline": 0.5,
            "control": "best_mean", "statements": P.load()["claims"]["statements"]}


def _judge(metrics, runs, params=None):
    """claims.judge with each experiment's configurations (their structure) from params."""
    params = params or P.load()
    specs = {e: P.resolve(params, e, "full") for e in metrics}
    return claims.judge(metrics, runs, SETTINGS, specs)


def _m(mean, std):
    return {"final_test_acc": {"mean": mean, "std": std}}


def _write(tmp_path, metrics: dict, seeds=(0, 1, 2)):
    for exp, m in metrics.items():
        layout = paths.Layout(tmp_path)
        for d in (layout.metrics, layout.runs):
            d.mkdir(parents=True, exist_ok=True)
        layout.report("metrics", exp).write_text(json.dumps(m))
        layout.report("runs", exp).write_text(
            json.dumps({"profile": "full", "settings": {"seeds": list(seeds)}}))
    return records.read_reports(paths.Layout(tmp_path))


def _by_id(rows):
    return {r["id"]: r for r in rows}


@pytest.mark.parametrize("config_mean, std, expected", [
    (0.900, 0.0, "supported"),         # equal
    (0.950, 0.0, "supported"),         # better
    (0.891, 0.0, "supported"),         # diff -0.009: within the tolerance
    (0.889, 0.0, "not supported"),     # diff -0.011: beyond the tolerance, no spread
    (0.889, 0.004, "inconclusive"),    # beyond the tolerance, within 2 x spread (0.0113)
    (0.870, 0.004, "not supported"),   # beyond both
])
def test_claim_verdict_flips_at_the_threshold(tmp_path, config_mean, std, expected):
    metrics, runs = _write(tmp_path, {"lenet": {"standard": _m(0.9, std),
                                                "constant": _m(config_mean, std)}})
    rows = _by_id(_judge(metrics, runs))
    r = rows["lenet_constant"]
    assert r["verdict"] == expected
    assert r["diff_mean"] == pytest.approx(config_mean - 0.9, abs=1e-6)
    assert r["diff_std"] == pytest.approx((2 * std**2) ** 0.5, abs=1e-6)
    assert r["n_seeds"] == 3 and r["baseline"] == "standard" and r["metric"] == "final_test_acc"
    assert set(r) >= {"id", "claim", "experiment", "baseline", "config", "metric",
                      "baseline_mean", "baseline_std", "config_mean", "config_std",
                      "diff_mean", "diff_std", "n_seeds", "verdict"}
    assert rows["claim_constant"]["verdict"] == expected


def test_a_baseline_that_did_not_learn_decides_nothing(tmp_path):
    metrics, runs = _write(tmp_path, {"cnn": {"relu_true": _m(0.11, 0.0),
                                              "relu_full_jam": _m(0.11, 0.0),
                                              "linear_true": _m(0.51, 0.0),
                                              "linear_full_jam": _m(0.51, 0.0)}})
    rows = _by_id(_judge(metrics, runs))
    assert rows["cnn_relu_full_jam"]["verdict"] == "inconclusive"
    assert rows["cnn_linear_full_jam"]["verdict"] == "supported"


def test_claims_pairs_summaries_and_bnn_aggregate(tmp_path):
    metrics, runs = _write(tmp_path, {
        "cnn": {"relu_true": _m(0.98, 0.0), "relu_full_jam": _m(0.975, 0.0),
                "linear_true": _m(0.9, 0.0), "linear_positive_jam": _m(0.5, 0.0),
                "relu_full_jam_bs256": _m(0.97, 0.0)},
        "bnn": {"logistic_d8": _m(0.9, 0.0), "step_constant_d8": _m(0.95, 0.0),
                "logistic_d16": _m(0.9, 0.0), "step_constant_d16": _m(0.85, 0.0)},
        "mlp_sweep": {"bs16_lr0.05_standard": _m(0.9, 0.0), "bs16_lr0.05_constant": _m(0.9, 0.0)},
    })
    rows = _by_id(_judge(metrics, runs))
    assert rows["cnn_relu_full_jam"]["baseline"] == "relu_true"
    assert rows["cnn_relu_full_jam"]["verdict"] == "supported"
    assert rows["cnn_linear_positive_jam"]["verdict"] == "not supported"
    assert rows["cnn_relu_full_jam_bs256"]["baseline"] == "relu_true"
    assert rows["claim_jamming"]["verdict"] == "mixed"
    assert rows["claim_jamming"]["counts"] == {"supported": 2, "not supported": 1,
                                               "inconclusive": 0}
    assert rows["bnn_step_constant_d8"]["baseline"] == "logistic_d8"
    agg = rows["bnn_step_constant"]
    assert agg["kind"] == "aggregate" and agg["d"] == [8, 16]
    assert agg["diff_mean"] == pytest.approx(0.0) and agg["verdict"] == "supported"
    assert rows["claim_step"]["verdict"] == "mixed"  # d8 better, d16 worse; aggregate not counted
    assert rows["mlp_sweep_bs16_lr0.05_constant"]["verdict"] == "supported"
    assert rows["claim_noise"]["verdict"] == "inconclusive" and rows["claim_noise"]["rows"] == 0
    md = claims.to_markdown(list(rows.values()), SETTINGS, {"cnn": "full"})
    assert "## `claim_jamming`: mixed" in md and "`cnn_linear_positive_jam`" in md
