"""Layer feedback rules (freegrad.feedback): forward unchanged, input gradient g B, true weight
and bias gradients, the draws' life, the angles, and clear errors."""

import math

import freegrad as fg
import pytest
import torch
import torch.nn.functional as F
from freegrad.diagnostics import feedback_angles
from freegrad.feedback_layers import Conv2dOp, FeedbackFunction, LinearOp
from torch import nn

MODES = fg.names("feedback")
FIXED, BATCHWISE = ("fa", "frsf"), ("brsf",)


def test_the_exported_modes_are_the_four_of_biotorch():
    assert set(MODES) == {"fa", "usf", "brsf", "frsf"}
    assert not set(MODES) & set(fg.names("activations"))


def _layers(dtype=torch.float64):
    torch.manual_seed(0)
    linear = nn.Linear(7, 5).to(dtype)
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=1, groups=2).to(dtype)
    return {"linear": (linear, torch.randn(3, 7, dtype=dtype)),
            "conv": (conv, torch.randn(2, 4, 9, 9, dtype=dtype))}


def _converted(layer):
    model, replaced = fg.convert(nn.Sequential(layer), inplace=False, feedback=True)
    assert list(replaced) == ["0"]
    return model[0]


def _grads(layer, x, g):
    x = x.clone().requires_grad_(True)
    layer.zero_grad()
    y = layer(x)
    y.backward(g)
    return y.detach(), x.grad, layer.weight.grad.clone(), layer.bias.grad.clone()


def _input_grad_formula(kind, layer, g, feedback, x):
    """g B for Linear; conv_transpose2d(g, B) for Conv2d (as vjp of x -> conv2d(x, B))."""
    if kind == "linear":
        return g @ feedback
    _, vjp = torch.func.vjp(lambda v: F.conv2d(v, feedback, None, layer.stride, layer.padding,
                                               layer.dilation, layer.groups), x)
    return vjp(g)[0]


@pytest.mark.parametrize("kind", ["linear", "conv"])
@pytest.mark.parametrize("mode", MODES)
def test_forward_is_torch_and_only_the_input_gradient_uses_b(mode, kind):
    plain, x = _layers()[kind]
    layer = _converted(plain)
    g = torch.randn_like(plain(x))
    y0, gx0, gw0, gb0 = _grads(plain, x, g)
    with fg.use(mode, scope="feedback", seed=1):
        y, gx, gw, gb = _grads(layer, x, g)
    feedback = layer.last_feedback
    assert torch.equal(y, y0)  # the forward is exactly F.linear / F.conv2d with W
    torch.testing.assert_close(gw, gw0, rtol=1e-12, atol=1e-12)  # true weight gradient
    torch.testing.assert_close(gb, gb0, rtol=1e-12, atol=1e-12)  # true bias gradient
    torch.testing.assert_close(gx, _input_grad_formula(kind, plain, g, feedback, x))
    assert not torch.allclose(gx, gx0)  # B is not W


def test_conv_input_gradient_is_conv_transpose_with_b():
    layer = _converted(nn.Conv2d(3, 4, 3, padding=1).double())
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    with fg.use("fa", scope="feedback", seed=0):
        y = layer(x)
    g = torch.randn_like(y)
    y.backward(g)
    expected = F.conv_transpose2d(g, layer.last_feedback, padding=1)
    torch.testing.assert_close(x.grad, expected)


@pytest.mark.parametrize("op", [LinearOp(), Conv2dOp((2, 1), (1, 0), (1, 2), 2)])
def test_the_function_passes_gradcheck_when_b_is_w(op):
    """With B = W the node is backpropagation: its whole backward matches finite differences."""
    torch.manual_seed(0)
    if isinstance(op, LinearOp):
        x, w, b = torch.randn(2, 3, 4), torch.randn(5, 4), torch.randn(5)
    else:
        x, w, b = torch.randn(2, 4, 7, 7), torch.randn(6, 2, 3, 3), torch.randn(6)
    x, w, b = (t.double().requires_grad_(True) for t in (x, w, b))
    assert torch.autograd.gradcheck(lambda x, w, b: FeedbackFunction.apply(x, w, b, w, op),
                                    (x, w, b))


@pytest.mark.parametrize("mode", MODES)
def test_without_a_rule_the_layer_is_torch_bit_for_bit(mode):
    for plain, x in _layers(torch.float32).values():
        layer = _converted(plain)
        g = torch.randn_like(plain(x))
        for a, b in zip(_grads(plain, x, g), _grads(layer, x, g), strict=True):
            assert torch.equal(a, b)
        with pytest.warns(UserWarning, match="changed nothing"):  # the outer block's
            with fg.use(mode, scope="feedback"), fg.exact():  # exact() clears feedback too
                for a, b in zip(_grads(plain, x, g), _grads(layer, x, g), strict=True):
                    assert torch.equal(a, b)


def _feedback_after(layer, x, mode, **use_kwargs):
    with fg.use(mode, scope="feedback", **use_kwargs):
        layer(x.requires_grad_(True)).sum().backward()
    return layer.last_feedback.clone()


@pytest.mark.parametrize("mode", MODES)
def test_a_seed_reproduces_the_feedback_matrices(mode):
    plain, x = _layers()["linear"]
    first = _feedback_after(_converted(plain), x, mode, seed=5)
    assert torch.equal(first, _feedback_after(_converted(plain), x, mode, seed=5))
    other = _feedback_after(_converted(plain), x, mode, seed=6)
    assert torch.equal(first, other) == (mode == "usf")  # usf draws nothing


@pytest.mark.parametrize("mode", MODES)
def test_only_brsf_redraws_each_batch(mode):
    plain, x = _layers()["conv"]
    layer = _converted(plain)
    with fg.use(mode, scope="feedback", seed=0):
        feedbacks = []
        for _ in range(3):
            layer(x.clone().requires_grad_(True)).sum().backward()
            feedbacks.append(layer.last_feedback.clone())
    same = all(torch.equal(feedbacks[0], f) for f in feedbacks[1:])
    assert same == (mode not in BATCHWISE)
    # a fixed draw outlives the block: a new block (another seed, even) keeps it
    again = _feedback_after(layer, x, mode, seed=99)
    assert torch.equal(again, feedbacks[0]) == (mode in FIXED + ("usf",))
    layer.reset_feedback()
    if mode in FIXED:
        assert not torch.equal(_feedback_after(layer, x, mode, seed=99), feedbacks[0])


def test_the_draws_follow_the_layers_init():
    layer = _converted(nn.Linear(300, 200))
    x = torch.randn(4, 300)
    for init, bound in (("kaiming", 1 / math.sqrt(300)), ("xavier", math.sqrt(6 / 500))):
        b = _feedback_after(layer, x, "fa", seed=0, params={"init": init})
        assert b.abs().max() <= bound and b.abs().max() > 0.99 * bound
        assert abs(b.std().item() - bound / math.sqrt(3)) < 0.02 * bound
        usf = _feedback_after(layer, x, "usf", params={"init": init})
        torch.testing.assert_close(usf, bound / math.sqrt(3) * layer.weight.detach().sign())


@pytest.mark.parametrize("mode", MODES)
def test_angles(mode):
    model, _ = fg.convert(nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(),
                                        nn.Linear(8 * 6 * 6, 10)), feedback=True)
    with fg.use(mode, scope="feedback", seed=0):
        model(torch.randn(2, 1, 8, 8)).sum().backward()
    angles = feedback_angles(model)
    assert set(angles) == {"0", "3"}
    if mode == "fa":  # a random B is near orthogonal to W
        assert all(80 < a < 100 for a in angles.values())
    else:  # sign-concordant: under 90 degrees by construction
        assert all(0 < a < 90 for a in angles.values())


def test_errors_name_what_is_accepted():
    layer = _converted(nn.Linear(3, 2))
    with pytest.raises(fg.RuleError, match=r"did you mean \['fa'"):
        fg.use("faa", scope="feedback")
    with pytest.raises(ValueError, match=r"init='he' is not one of \['kaiming', 'xavier'\]"):
        fg.use("fa", params={"init": "he"}, scope="feedback")
    with pytest.raises(TypeError, match=r"unknown parameter\(s\) \['sigma'\]; it accepts"):
        fg.use("usf", params={"sigma": 1.0}, scope="feedback")
    with pytest.raises(ValueError, match="takes scope='feedback' alone"):
        fg.use("fa", scope="all")
    with pytest.raises(ValueError, match=r"scope 'feedback' takes a layer feedback rule, one of"):
        fg.use("rectangular", scope="feedback")
    plain = nn.Sequential(nn.Linear(3, 2), nn.ReLU())
    with pytest.raises(ValueError, match=r"fg.convert\(model, feedback=True\)"):
        fg.use("fa", scope="feedback", layers=fg.select(plain, "0")).__enter__()
    with pytest.raises(ValueError, match="no layer of the model has a feedback matrix"):
        feedback_angles(plain)
    with pytest.raises(TypeError, match="is a layer feedback rule"):
        fg.get("fa")(None, torch.ones(2), None)
    with pytest.warns(UserWarning, match="changed nothing"), fg.use("fa", scope="feedback"):
        with torch.no_grad():
            layer(torch.ones(1, 3))


def test_layers_limits_the_rule_and_convert_strip_round_trip():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    weight = model[0].weight
    fg.convert(model, feedback=True)
    assert model[0].weight is weight and isinstance(model[0], nn.Linear)
    with fg.use("usf", scope="feedback", layers=fg.select(model, "2")):
        model(torch.randn(3, 4)).sum().backward()
    assert model[0].last_feedback is None and model[2].last_feedback is not None
    _, stripped = fg.strip(model)
    assert sorted(stripped) == ["0", "1", "2"] and type(model[0]) is nn.Linear
    assert model[0].weight is weight
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("mode", MODES)
def test_torch_func_grad_gives_the_feedback_gradient(mode):
    layer = _converted(nn.Linear(6, 3).double())
    x = torch.randn(4, 6, dtype=torch.float64)
    with fg.use(mode, scope="feedback", seed=0):
        gx = torch.func.grad(lambda v: layer(v).square().sum())(x)
        feedback = layer.last_feedback
    g = 2 * layer(x).detach()
    torch.testing.assert_close(gx, g @ feedback)


@pytest.mark.parametrize("mode", ["fa", "usf"])
def test_torch_compile_gives_eager_gradients(mode):
    model, _ = fg.convert(nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(),
                                        nn.Linear(3 * 4 * 4, 2)), feedback=True)
    compiled = torch.compile(model, backend="aot_eager")
    x = torch.randn(2, 1, 6, 6, requires_grad=True)
    grads = []
    for m in (model, compiled):
        x.grad = None
        with fg.use(mode, scope="feedback", seed=0):
            m(x).sum().backward()
        grads.append(x.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])
