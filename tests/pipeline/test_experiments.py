"""Models, per-configuration settings, diagnostics and claims, without DVC."""

from __future__ import annotations

import freegrad as fg
import pytest
import torch

from experiments import config as P
from experiments import data as D
from experiments.analysis import claims
from experiments.analysis.verdicts import VERDICTS
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

SETTINGS = {"metric": "final_test_acc", "delta": 0.01, "min_baseline": 0.5,
            "statements": P.load()["claims"]["statements"]}
CHANCE = 0.1135


def _config(values, lr=0.01):
    """A configuration's entry in a runs file: per seed its accuracy, None = diverged."""
    runs = {f"seed_{s}": ({"final_test_acc": None, "diverged_at_epoch": 3} if v is None
                          else {"final_test_acc": v, "final_test_loss": 1 - v})
            for s, v in enumerate(values)}
    return {"lr": lr, "chance_accuracy": CHANCE, "diverged": sum(v is None for v in values),
            "runs": runs}


def _runs(configs: dict, tuned: dict | None = None) -> dict:
    """A runs file: ``configs`` name -> per-seed accuracies; ``tuned``: arm -> its tuned
    configuration (a search record)."""
    out = {"profile": "full", "configs": {c: _config(v) for c, v in configs.items()}}
    if tuned is not None:
        out["tuning"] = {"arms": {c: {"tuned_config": t} for c, t in tuned.items()}}
    return out


def _judge(runs: dict) -> dict:
    """claims.judge with each experiment's configurations (their structure) from params."""
    params = P.load()
    specs = {e: P.resolve(params, e, "full") for e in runs}
    return _by_id(claims.judge(runs, SETTINGS, specs))


def _by_id(rows):
    return {r["id"]: r for r in rows}


BASE = [0.90, 0.91, 0.92, 0.93, 0.94]


@pytest.mark.parametrize("shift, expected", [
    ([0.0] * 5, "supported"),                              # equal: a point interval at 0
    ([0.05] * 5, "supported"),                             # better
    ([-0.009] * 5, "supported"),                           # within delta, no spread
    ([-0.011] * 5, "not supported"),                       # beyond delta, no spread
    ([-0.011, -0.001, -0.021, -0.006, -0.016], "inconclusive"),  # the interval crosses -delta
    ([-0.05, -0.04, -0.06, -0.045, -0.055], "not supported"),
])
def test_a_rows_verdict_follows_its_paired_interval(shift, expected):
    rows = _judge({"lenet": _runs({"standard": BASE,
                                   "constant": [b + d for b, d in zip(BASE, shift, strict=True)]})})
    r = rows["lenet_constant"]["paper"]
    assert r["verdict"] == expected and r["pairing"] == "paired by seed"
    assert r["diff"] == pytest.approx(sum(shift) / 5, abs=1e-6)
    assert r["low"] <= r["diff"] <= r["high"] and r["seeds"] == [0, 1, 2, 3, 4]
    assert rows["lenet_constant"]["reference"] == "standard"
    assert rows["claim_constant"]["paper"]["verdict"] == expected
    assert rows["lenet_constant"]["tuned"] is None  # no search in these runs


def test_a_reference_that_did_not_learn_decides_nothing():
    rows = _judge({"cnn": _runs({"relu_true": [0.11] * 3, "relu_full_jam": [0.11] * 3,
                                 "linear_true": [0.51] * 3, "linear_full_jam": [0.51] * 3})})
    assert rows["cnn_relu_full_jam"]["paper"]["verdict"] == "inconclusive"
    assert rows["cnn_linear_full_jam"]["paper"]["verdict"] == "supported"


def test_a_diverged_seed_counts_as_a_failed_run_at_chance():
    rows = _judge({"lenet": _runs({"standard": BASE, "constant": [*BASE[:4], None]})})
    r = rows["lenet_constant"]["paper"]
    assert r["diverged"] == [1, 0]
    assert r["config_mean"] == pytest.approx((sum(BASE[:4]) + CHANCE) / 5, abs=1e-6)
    assert r["verdict"] != "supported"


def test_seeds_that_ran_but_learned_nothing_are_counted_apart_from_diverged_ones():
    rows = _judge({"lenet": _runs({"standard": [*BASE[:3], CHANCE, 0.09],
                                   "constant": [*BASE[:4], None]})})
    r = rows["lenet_constant"]["paper"]
    assert r["at_chance"] == [0, 2] and r["diverged"] == [1, 0]


def test_each_row_names_the_comparator_of_its_claim():
    rows = _judge({
        "lenet": _runs({"standard": BASE, "constant": BASE, "noise_0.1": BASE}),
        "cnn": _runs({"relu_true": BASE, "relu_full_jam": BASE, "relu_true_bs256": BASE,
                      "relu_full_jam_bs256": BASE})})
    assert rows["lenet_noise_0.1"]["reference"] == "constant"  # noise on the constant rule
    assert rows["cnn_relu_full_jam_bs256"]["reference"] == "relu_true_bs256"  # same batch size
    assert "cnn_relu_true_bs256" not in rows


def test_rows_with_identical_runs_are_reported_once():
    rows = _judge({"cnn": _runs({"relu_true": BASE, "relu_full_jam": [0.9] * 5,
                                 "relu_rectangular_jam_grad": [0.9] * 5,
                                 "relu_positive_jam_grad": [0.8] * 5})})
    assert "cnn_relu_rectangular_jam_grad" not in rows
    assert rows["cnn_relu_full_jam"]["coincides_with"] == [
        {"id": "cnn_relu_rectangular_jam_grad", "config": "relu_rectangular_jam_grad",
         "claim_id": "jamming_alternative"}]
    assert rows["claim_jamming_alternative"]["folded"] == ["cnn_relu_rectangular_jam_grad"]
    assert rows["claim_jamming_alternative"]["rows"] == 1


def test_the_tuned_reading_compares_each_arm_at_its_chosen_rate():
    runs = _runs({"standard": [0.1135] * 5, "constant": BASE, "standard_tuned": BASE,
                  "constant_tuned": [b - 0.03 for b in BASE]},
                 tuned={"standard": "standard_tuned", "constant": "constant_tuned"})
    r = _judge({"lenet": runs})["lenet_constant"]
    assert r["paper"]["verdict"] == "inconclusive"  # the paper-setting reference stays at chance
    assert (r["tuned"]["config"], r["tuned"]["reference"]) == ("constant_tuned",
                                                               "standard_tuned")
    assert r["tuned"]["diff"] == pytest.approx(-0.03) and r["tuned"]["verdict"] == "not supported"


def test_claim_summaries_and_the_bnn_aggregate():
    rows = _judge({
        "cnn": _runs({"relu_true": BASE, "relu_full_jam": BASE,
                      "linear_true": BASE, "linear_positive_jam": [b - 0.4 for b in BASE]}),
        "bnn": _runs({"logistic_d8": BASE, "step_constant_d8": [b + 0.02 for b in BASE],
                      "logistic_d16": BASE, "step_constant_d16": [b - 0.02 for b in BASE]})})
    assert rows["claim_jamming"]["paper"]["verdict"] == "mixed"
    assert rows["claim_jamming"]["paper"]["counts"] == {"supported": 1, "not supported": 1,
                                                        "inconclusive": 0}
    agg = rows["bnn_step_constant"]
    assert agg["kind"] == "aggregate" and agg["d"] == [8, 16]
    assert agg["paper"]["diff"] == pytest.approx(0.0, abs=1e-9)
    assert agg["paper"]["verdict"] == "supported"
    assert rows["claim_step"]["paper"]["verdict"] == "mixed"  # the aggregate is not counted
    assert rows["claim_noise"]["rows"] == 0
    assert rows["claim_noise"]["paper"] == {"verdict": "inconclusive", "worst_diff": None,
                                            "counts": dict.fromkeys(VERDICTS, 0), "rows": 0}
    md = claims.to_markdown(list(rows.values()), SETTINGS, {"cnn": "full"})
    assert "## `claim_jamming`" in md and "`cnn_linear_positive_jam`" in md
