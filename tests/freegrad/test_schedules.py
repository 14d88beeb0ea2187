"""Schedules: a rule parameter as a function of the optimiser step, bound at forward."""

import math

import freegrad as fg
import pytest
import torch
from freegrad import schedules as S
from torch import nn

X = torch.linspace(-1.5, 1.5, 13, dtype=torch.float64)


# -- the schedule objects -----------------------------------------------------------------

def test_the_formulas():
    lin, cos = S.linear(1.0, 0.25, 100), S.cosine(1.0, 0.25, 100)
    for t in (0, 1, 37, 50, 99, 100, 101, 10_000):
        u = min(t, 100) / 100
        assert lin(t) == pytest.approx(1.0 + (0.25 - 1.0) * u)
        assert cos(t) == pytest.approx(0.25 + (1.0 - 0.25) * (1 + math.cos(math.pi * u)) / 2)
    assert (lin(0), lin(100), cos(0), cos(100), cos(5000)) == (1.0, 0.25, 1.0, 0.25, 0.25)
    assert S.constant(0.5)(0) == S.constant(0.5)(10**9) == 0.5
    pw = S.piecewise([10, 20], [1.0, 0.5, 0.25])
    assert [pw(t) for t in (0, 9, 10, 19, 20, 1000)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    assert pw.knots() == (0, 10, 20) and lin.knots() == (0, 100)


@pytest.mark.parametrize("schedule", [S.constant(0.5), S.linear(1.0, 0.1, 1000),
                                      S.cosine(-1.0, -0.25, 7), S.piecewise([3], [2.0, 1.0])])
def test_a_schedule_is_a_plain_dict_and_back(schedule):
    spec = schedule.spec()
    assert spec["schedule"] == schedule.kind
    assert all(isinstance(v, (str, int, float, list)) for v in spec.values())  # YAML-able
    assert S.from_spec(spec) == schedule
    assert S.from_spec(schedule) is schedule


@pytest.mark.parametrize("spec, match", [
    ({"schedule": "lineal", "start": 1}, r"unknown schedule 'lineal'; kinds are \['constant'"),
    ({"schedule": "linear", "start": 1.0, "end": 0.1, "steps": 10, "step": 3},
     r"unknown key\(s\) \['step'\]; it takes \['start', 'end', 'steps'\]"),
    ({"schedule": "linear", "start": 1.0, "end": 0.1}, r"missing key\(s\) \['steps'\]"),
    ({"start": 1.0}, "a dict with a 'schedule' key"),
    ({"schedule": "linear", "start": 1.0, "end": 0.1, "steps": 0}, "steps=0 must be an integer"),
    ({"schedule": "cosine", "start": math.inf, "end": 0.1, "steps": 3}, "must be a finite"),
    ({"schedule": "piecewise", "boundaries": [5, 5], "values": [1, 2, 3]}, "must increase"),
    ({"schedule": "piecewise", "boundaries": [5], "values": [1]}, "1 boundaries need 2 values"),
])
def test_bad_specs_are_clear_errors(spec, match):
    with pytest.raises(ValueError, match=match):
        S.from_spec(spec)


def test_a_step_is_a_non_negative_integer():
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="step"):
            S.linear(1.0, 0.0, 10)(bad)
        with pytest.raises(ValueError, match="step"):
            fg.Clock(bad)


# -- bound at forward ---------------------------------------------------------------------

def _window(a: float, b: float) -> torch.Tensor:
    return ((X >= a) & (X <= b)).double()


def test_each_forward_binds_the_value_of_its_step_and_its_backward_keeps_it():
    act = fg.Activation("Logistic")
    block = fg.use("rectangular", {"a": S.linear(-1.0, -0.25, 4), "b": S.linear(1.0, 0.25, 4)},
                   scope="activations")
    x = X.clone().requires_grad_(True)
    outputs, seen = [], []
    with block:
        for _ in range(6):
            outputs.append(act(x))
            seen.append(block.values())
            block.step()
    assert [v["b"] for v in seen] == [1.0, 0.8125, 0.625, 0.4375, 0.25, 0.25]
    assert block.t == 6
    for y, values in zip(outputs, seen, strict=True):  # backwards after every step: the
        x.grad = None                                   # forward's value, not the last one
        y.sum().backward()
        torch.testing.assert_close(x.grad, _window(values["a"], values["b"]))


def test_a_clock_attached_to_the_optimiser_counts_its_steps():
    model = nn.Sequential(nn.Linear(3, 3), fg.Activation("Tanh"))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    block = fg.use("triangular", {"width": S.piecewise([2], [1.0, 0.5])}, scope="activations")
    handle = block.clock.attach(opt)
    widths = []
    with block:
        for _ in range(4):
            widths.append(block.values()["width"])
            model(torch.randn(2, 3)).sum().backward()
            opt.step()
    handle.remove()
    opt.step()
    assert widths == [1.0, 1.0, 0.5, 0.5] and block.t == 4


def test_a_shared_clock_advances_two_blocks_and_can_resume():
    clock = fg.Clock(t=90)  # resumed at step 90
    acts = fg.use("rectangular", {"b": S.linear(1.0, 0.0 + 0.5, 100)}, "activations", clock=clock)
    params = fg.use("scale", {"s": S.linear(1.0, 2.0, 100)}, "params", clock=clock)
    clock.step(10)
    assert acts.values() == {"b": 0.5} and params.values() == {"s": 2.0}
    assert acts.t == params.t == 100


def test_a_scheduled_param_gradient_is_the_rule_at_the_scheduled_value():
    model = nn.Linear(4, 2)
    fg.attach_param_hooks(model)
    block = fg.use("scale", {"s": S.cosine(2.0, 0.5, 10)}, scope="params")
    x = torch.randn(3, 4)
    with block:
        block.step(5)
        model(x).sum().backward()
    scaled = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model(x).sum().backward()
    for s, p in zip(scaled, model.parameters(), strict=True):
        torch.testing.assert_close(s, S.cosine(2.0, 0.5, 10)(5) * p.grad)


def test_a_value_out_of_range_is_an_error_naming_the_step_and_the_value():
    # at creation: the schedule's knots are checked, so this fails before training starts
    with pytest.raises(ValueError, match=r"rule 'triangular': width=-1.0 must be > 0 \(at step "
                                         r"10: width=-1.0 from linear\(1.0, -1.0, steps=10\)\)"):
        fg.use("triangular", {"width": S.linear(1.0, -1.0, 10)})
    # two schedules crossing between their knots: refused at the step where they cross
    block = fg.use("rectangular", {"a": S.cosine(-1.0, 0.5, 10),
                                   "b": S.piecewise([5, 9], [1.0, 0.2, 1.0])}, scope="activations")
    act, x = fg.Activation("Logistic"), X.clone().requires_grad_(True)
    with pytest.raises(ValueError, match=r"a=.* must be < b=.* \(at step 8: a=.*cosine"), block:
        for _ in range(10):
            act(x)
            block.step()


def test_a_misspelled_parameter_stays_an_error():
    with pytest.raises(TypeError, match=r"unknown parameter\(s\) \['widht'\]; it accepts"):
        fg.use("triangular", {"widht": S.linear(1.0, 0.5, 10)})
    with pytest.raises(TypeError, match="must be a str"):  # a schedule of a text option
        fg.use("noise", {"mode": S.constant(1.0)})


def test_a_dict_spec_is_a_schedule_where_a_block_takes_params():
    spec = {"schedule": "linear", "start": 1.0, "end": 0.5, "steps": 10}
    block = fg.use("triangular", {"width": spec})
    block.step(5)
    assert block.values() == {"width": 0.75}


def test_a_schedule_without_a_step_is_refused():
    with pytest.raises(TypeError, match="is a schedule, which has a value only at a step"):
        fg.compose(("triangular", {"width": S.constant(1.0)}))
    with pytest.raises(TypeError, match="is a schedule"):
        fg.get("triangular")(None, torch.ones(2), torch.ones(2), width=S.constant(1.0))


def test_values_without_schedules_are_the_numeric_params():
    assert fg.use("rectangular", {"a": -1, "b": 1.5}).values() == {"a": -1.0, "b": 1.5}
    assert fg.use("noise", {"sigma": 0.2, "mode": "multiplicative"}).values() == {"sigma": 0.2}


# -- a LeNet-5 trained under a narrowing window -------------------------------------------

def lenet5(act) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), act(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5), act(), nn.AvgPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), act(), nn.Linear(120, 84), act(), nn.Linear(84, 10))


def _data(n=32):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 10
    proto = torch.randn(10, 1, 28, 28, generator=g)
    return proto[y] + 0.5 * torch.randn(n, 1, 28, 28, generator=g), y


def test_a_lenet5_trains_under_a_rectangular_window_that_narrows():
    torch.manual_seed(0)
    model = lenet5(lambda: fg.Activation("Tanh"))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    x, y = _data()
    b = S.linear(2.0, 0.5, 15)
    block = fg.use("rectangular", {"a": S.linear(-2.0, -0.5, 15), "b": b}, scope="activations")
    block.clock.attach(opt)
    losses, bs = [], []
    with block:
        for step in range(20):
            if step in (0, 9, 19):  # the gradient is the rule at the value of this step
                _check_gradient_at_this_step(model, x, y, block)
            bs.append(block.values()["b"])
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    assert bs == [b(t) for t in range(20)] and bs[0] == 2.0 and bs[-1] == 0.5
    assert losses[-1] < 0.5 * losses[0], losses


def _check_gradient_at_this_step(model, x, y, block):
    def grads():
        model.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        return [p.grad.clone() for p in model.parameters()]

    scheduled = grads()  # inside the scheduled block, at its step
    with fg.use("rectangular", block.values(), scope="activations"):  # the same, constant
        fixed = grads()
    for s, f in zip(scheduled, fixed, strict=True):
        torch.testing.assert_close(s, f, rtol=0, atol=0)
    model.zero_grad()


def test_the_guide_shows_the_figure_its_script_draws():
    from pathlib import Path

    docs = Path(__file__).resolve().parents[2] / "libs" / "freegrad" / "docs"
    assert (docs / "schedules.png").stat().st_size > 10_000
    assert (docs / "schedules_figure.py").is_file()
    guide = (docs / "guide.md").read_text(encoding="utf-8")
    assert "](schedules.png)" in guide and "schedules_figure.py" in guide
