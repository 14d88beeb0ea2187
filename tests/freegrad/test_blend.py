"""blend(rule, mix): mix · rule + (1 − mix) · the true derivative, mix possibly scheduled."""

import functools
import math

import freegrad as fg
import pytest
import torch
from freegrad import schedules as S
from freegrad.autograd import ActivationFunction
from freegrad.context import Binding
from freegrad.forwards import FORWARDS
from freegrad.memory import saved_bytes

# away from every forward's kink (0, ±1, 6, the HardTanh bounds, Softplus' threshold / beta)
X = torch.tensor([-3.1, -1.7, -1.2, -0.61, -0.33, -0.07, 0.04, 0.28, 0.55, 0.9, 1.3, 2.4, 7.2],
                 dtype=torch.float64)
FORWARD_PARAMS = {"LeakyReLU": {"negative_slope": 0.1}, "ELU": {"alpha": 0.5},
                  "Softplus": {"beta": 2.0, "threshold": 3.0},
                  "HardTanh": {"min_val": -1.5, "max_val": 2.0}}


def _grad(act, x, rule=None, params=None, scope="activations"):
    x = x.clone().requires_grad_(True)
    if rule is None:
        act(x).sum().backward()
    else:
        with fg.use(rule, params, scope=scope):
            y = act(x)
        y.sum().backward()
    return x.grad


@pytest.mark.parametrize("forward", sorted(set(FORWARDS) - {"Heaviside"}))
def test_the_blend_is_mix_times_the_rule_plus_the_rest_times_autograd(forward):
    act = fg.Activation(forward, **FORWARD_PARAMS.get(forward, {}))
    ruled = _grad(act, X, "triangular", {"width": 1.5})
    true = _grad(act, X)  # no rule: PyTorch's own backward of the forward
    blended = _grad(act, X, fg.blend("triangular", mix=0.3), {"width": 1.5})
    torch.testing.assert_close(blended, 0.3 * ruled + 0.7 * true)


@pytest.mark.parametrize("forward, rule, primitive", [
    ("Tanh", "arctan", lambda x: torch.atan(math.pi / 2 * 2.0 * x) / math.pi),
    ("LeakyReLU", "sigmoid", lambda x: torch.sigmoid(25.0 * x)),
    ("Softplus", "gaussian", lambda x: 0.5 * torch.special.erf(x / (0.5 * math.sqrt(2)))),
])
@pytest.mark.parametrize("mix", [0.0, 0.35, 1.0])
def test_gradcheck_the_blend_against_the_mixture_of_a_primitive_and_the_forward(
        forward, rule, primitive, mix):
    """With P' = the rule, the blend is the exact derivative of mix · P + (1 − mix) · F."""
    binding = Binding(fg.blend(rule, mix=mix).bind(), frozenset({"activations"}))

    def mixture(x, **params):  # the forward's params reach d(F) as a bound forward's do
        return mix * primitive(x) + (1 - mix) * FORWARDS[forward].fn(x, **params)

    fn = functools.partial(mixture, **FORWARD_PARAMS.get(forward, {}))
    x = X.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda x: ActivationFunction.apply(x, fn, forward, binding), (x,), eps=1e-7)


def test_mix_one_is_the_rule_and_mix_zero_the_true_derivative_exactly():
    act = fg.Activation("Logistic")
    edges = torch.tensor([-math.inf, -0.5, -0.0, 0.0, 0.5, math.inf, math.nan], dtype=torch.float64)
    for x in (X, edges):
        rule = _grad(act, x, "rectangular")
        d = _grad(act, x, "d(Logistic)")
        torch.testing.assert_close(_grad(act, x, fg.blend("rectangular", mix=1.0)), rule,
                                   rtol=0, atol=0, equal_nan=True)
        torch.testing.assert_close(_grad(act, x, fg.blend("rectangular", mix=0.0)), d,
                                   rtol=0, atol=0, equal_nan=True)


def test_mix_one_keeps_no_more_than_the_rule():
    act, x = fg.Activation("Tanh"), torch.randn(1000, requires_grad=True)

    def keeps(rule):
        def run():
            with fg.use(rule, scope="activations"):
                act(x)
        return saved_bytes(run)

    assert keeps(fg.blend("rectangular", mix=1.0)) == keeps("rectangular") == 1000
    assert keeps(fg.blend("rectangular", mix=0.5)) == 1000 + 4000  # the mask and the input


def test_on_parameter_gradients_the_true_backward_is_the_gradient():
    model = torch.nn.Linear(3, 2)
    fg.attach_param_hooks(model)
    x = torch.randn(4, 3)
    model(x).sum().backward()
    plain = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    with fg.use(fg.blend("scale", mix=0.25), {"s": 3.0}, scope="params"):
        model(x).sum().backward()
    for p, g in zip(model.parameters(), plain, strict=True):
        torch.testing.assert_close(p.grad, (0.25 * 3.0 + 0.75) * g)


def test_a_scheduled_mix_warms_up_from_the_true_derivative_to_the_rule():
    act, x = fg.Activation("Logistic"), X.clone().requires_grad_(True)
    block = fg.use(fg.blend("rectangular", mix=S.linear(0.0, 1.0, 4)), scope="activations")
    outputs, mixes = [], []
    with block:
        for _ in range(5):
            outputs.append(act(x))
            mixes.append(block.values()["mix"])
            block.step()
    assert mixes == [0.0, 0.25, 0.5, 0.75, 1.0]
    s = torch.sigmoid(X)
    rect = ((X >= -0.5) & (X <= 0.5)).double()
    for y, mix in zip(outputs, mixes, strict=True):
        x.grad = None
        y.sum().backward()
        torch.testing.assert_close(x.grad, mix * rect + (1 - mix) * s * (1 - s))


def test_the_name_blend_of_a_rule_takes_mix_from_use():
    block = fg.use("blend(triangular)", {"mix": {"schedule": "cosine", "start": 0.0, "end": 1.0,
                                                 "steps": 10}, "width": 0.5})
    block.step(10)
    assert block.values() == {"mix": 1.0, "width": 0.5}
    assert fg.get("blend(noise)").stochastic and not fg.get("blend(d(Tanh))").stochastic


@pytest.mark.parametrize("make, error, match", [
    (lambda: fg.use("blend(rectangular)"), TypeError, r"needs parameter\(s\) \['mix'\]"),
    (lambda: fg.blend("rectangular", mix=1.5), ValueError, r"mix=1.5 must be a number in \[0, 1"),
    (lambda: fg.use(fg.blend("rectangular", mix=S.linear(0.0, 2.0, 10))), ValueError,
     r"mix=2.0 must be .* \(at step 10: mix=2.0 from linear"),
    (lambda: fg.use("blend(rectangular)", {"mix": 0.5, "bb": 1.0}), TypeError,
     r"unknown parameter\(s\) \['bb'\]"),
    (lambda: fg.compose(fg.blend("rectangular", mix=S.constant(0.5))).bind(), TypeError,
     "is a schedule"),
    (lambda: fg.get("blend(rectangulr)"), fg.RuleError, "unknown rule 'rectangulr'"),
])
def test_blend_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_a_blend_registers_like_a_rule():
    rule = fg.register("test_warm_rect")(fg.blend("rectangular", mix=0.5))
    try:
        assert fg.get("test_warm_rect") is rule and rule.name == "test_warm_rect"
        act = fg.Activation("Tanh")
        torch.testing.assert_close(_grad(act, X, "test_warm_rect"),
                                   _grad(act, X, fg.blend("rectangular", mix=0.5)))
        from freegrad import cards

        assert ("| `test_warm_rect` | mix · [rectangular] + (1 − mix) · [d(F)] | `a=-0.5`, "
                "`b=0.5`, `mix=0.5` | as its parts | no | blend |") in cards.render()
    finally:
        fg.unregister("test_warm_rect")
