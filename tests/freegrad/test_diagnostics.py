"""Gradient-direction diagnostics: cosine, sign agreement, norm ratio."""

import math

import freegrad as fg
import pytest
import torch
from freegrad.diagnostics import GradientDiagnostics, compare, gradient_agreement
from torch import nn


def test_compare_values():
    t = torch.tensor([1.0, -2.0, 0.0, 3.0])
    r = torch.tensor([2.0, 1.0, 0.0, 3.0])
    got = compare(t, r)
    assert got["cosine"] == pytest.approx((2 - 2 + 9) / (math.sqrt(14) * math.sqrt(14)))
    assert got["sign_agreement"] == pytest.approx(0.75)
    assert got["norm_ratio"] == pytest.approx(1.0)
    assert compare(t, -t)["cosine"] == pytest.approx(-1.0)
    assert compare(t, 3 * t)["norm_ratio"] == pytest.approx(3.0)


def _setup():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(6, 8), fg.Activation("Logistic"), nn.BatchNorm1d(8), nn.Linear(8, 3)
    ).double()
    x, y = torch.randn(32, 6, dtype=torch.float64), torch.randint(0, 3, (32,))
    return model, (lambda: nn.functional.cross_entropy(model(x), y))


def test_true_derivative_rule_agrees_exactly_and_leaves_state_alone():
    model, loss_fn = _setup()
    stats = model[2].running_mean.clone()
    rng = torch.get_rng_state()
    result = gradient_agreement(model, loss_fn, "d(Logistic)")
    for name, m in result.items():
        assert m["cosine"] == pytest.approx(1.0, abs=1e-9), name
        assert m["norm_ratio"] == pytest.approx(1.0, abs=1e-9), name
    assert torch.equal(model[2].running_mean, stats) and torch.equal(torch.get_rng_state(), rng)


def test_constant_rule_keeps_direction_of_last_layer_but_not_first():
    model, loss_fn = _setup()
    result = gradient_agreement(model, loss_fn, "d(Linear)")
    assert result["3.weight"]["cosine"] == pytest.approx(1.0)  # above the activation: unchanged
    assert result["0.weight"]["cosine"] < 0.999  # below it: changed
    assert 0 < result["0.weight"]["sign_agreement"] <= 1
    assert set(result) == {n for n, _ in model.named_parameters()} | {"all"}


def test_callback_logs_every_n_steps():
    model, loss_fn = _setup()
    logged = []
    callback = GradientDiagnostics(model, "rectangular", every=2,
                                   log=lambda m, step: logged.append((step, m)))
    for step in range(5):
        callback(step, loss_fn)
    assert [s for s, _ in logged] == [0, 2, 4]
    assert "cosine/0.weight" in logged[0][1] and "norm_ratio/all" in logged[0][1]
    assert len(callback.history) == 3


def test_callback_checks_rule_at_once():
    model, _ = _setup()
    with pytest.raises(TypeError):
        GradientDiagnostics(model, "rectangular", {"width": 1.0})


def test_measured_inside_a_training_rule_block_the_reference_is_still_the_truth():
    model, loss_fn = _setup()
    outside = gradient_agreement(model, loss_fn, "d(Linear)")
    # its forwards run under exact() and its own block: the outer one binds nothing, and says so
    with pytest.warns(UserWarning, match="changed nothing"):
        with fg.use("d(Linear)", scope="activations"):
            inside = gradient_agreement(model, loss_fn, "d(Linear)")
    assert inside["0.weight"]["cosine"] == pytest.approx(outside["0.weight"]["cosine"], abs=1e-12)
    assert inside["0.weight"]["cosine"] < 0.999
