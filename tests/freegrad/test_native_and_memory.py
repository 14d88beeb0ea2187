"""No rule costs nothing; with a rule, only what it needs is saved for backward."""

import freegrad as fg
import pytest
import torch
import torch.nn.functional as F
from freegrad.forwards import FORWARDS
from freegrad.memory import saved_bytes

NATIVE = {
    "Linear": lambda x: x,
    "ReLU": torch.relu,
    "ReLU6": F.relu6,
    "LeakyReLU": F.leaky_relu,
    "ELU": F.elu,
    "Tanh": torch.tanh,
    "Logistic": torch.sigmoid,
    "SiLU": F.silu,
    "GELU": F.gelu,
    "Softplus": F.softplus,
    "Sign": torch.sign,
    "HardTanh": F.hardtanh,
}


def test_native_table_covers_every_differentiable_forward():
    assert set(NATIVE) == {n for n, f in FORWARDS.items() if f.native_grad}


@pytest.mark.parametrize("forward", sorted(NATIVE))
def test_no_rule_is_the_native_op(forward):
    x = torch.randn(64, dtype=torch.float64, requires_grad=True)
    y = fg.Activation(forward)(x)
    assert not isinstance(y.grad_fn, torch.autograd.function.BackwardCFunction)  # no freegrad node
    x2 = x.detach().clone().requires_grad_(True)
    y2 = NATIVE[forward](x2)
    torch.testing.assert_close(y, y2, rtol=0, atol=0)
    g = torch.randn_like(y)
    (gx,) = torch.autograd.grad(y, x, g)
    (gx2,) = torch.autograd.grad(y2, x2, g)
    torch.testing.assert_close(gx, gx2, rtol=0, atol=0)


@pytest.mark.parametrize("forward", ["Logistic", "Tanh", "SiLU", "GELU", "Softplus", "ELU"])
def test_no_rule_double_backward(forward):
    x = torch.randn(16, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(fg.Activation(forward), (x,))


def test_heaviside_without_rule_has_zero_gradient():
    x = torch.randn(10, requires_grad=True)
    y = fg.Activation("Heaviside")(x)
    torch.testing.assert_close(y, (x > 0).float())
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.zeros(10))


N = 4096


@pytest.mark.parametrize(
    "rule,params,bytes_per_element",
    [
        ("d(Linear)", {}, 0),
        ("scale", {"s": 2.0}, 0),
        ("noise", {"sigma": 0.1}, 0),
        ("full_jam", {}, 0),
        ("d(Heaviside)", {}, 0),
        ("rectangular", {}, 1),
        ("d(ReLU)", {}, 1),
        ("d(HardTanh)", {}, 1),
        ("positive_jam", {}, 1),
        ("rectangular_jam", {}, 1),
        ("rectangular_jam", {"test": "grad"}, 0),
        ("straight_through", {}, 1),
        ("triangular", {}, 4),
        ("d(Logistic)", {}, 4),
    ],
)
def test_saved_bytes_are_what_the_rule_needs(rule, params, bytes_per_element):
    x = torch.randn(N, requires_grad=True)
    with fg.use(rule, params, scope="activations"):
        got = saved_bytes(fg.Activation("Logistic"), x)
    assert got == bytes_per_element * N


def test_user_rule_saves_the_input_by_default():
    def user_rule(ctx, grad_out, input):
        return grad_out * input

    x = torch.randn(N, requires_grad=True)
    with fg.use(user_rule):
        assert saved_bytes(fg.Activation("ReLU"), x) == 4 * N


def test_native_logistic_saves_its_output():
    x = torch.randn(N, requires_grad=True)
    assert saved_bytes(fg.Activation("Logistic"), x) == 4 * N  # the baseline a mask rule beats


def test_a_forward_under_no_grad_computes_no_mask_even_with_a_rule(monkeypatch):
    import freegrad.rules

    def no_mask(*args):
        raise AssertionError("a mask was computed for a forward no backward can follow")

    monkeypatch.setattr(freegrad.rules, "compute_mask", no_mask)
    x = torch.randn(64, requires_grad=True)
    with pytest.warns(UserWarning, match="changed nothing"):  # nothing was bound
        with fg.use("rectangular", scope="activations"), torch.no_grad():
            y = fg.Activation("Logistic")(x)
    assert y.grad_fn is None and torch.equal(y, torch.sigmoid(x.detach()))
    with fg.use("rectangular", scope="activations"), \
            pytest.raises(AssertionError, match="no backward"):
        fg.Activation("Logistic")(x)  # with grad enabled the mask is needed


def test_mask_rules_compute_their_masks_on_the_kernels_without_rules_importing_them(monkeypatch):
    """freegrad.rules imports nothing of freegrad.kernels; the package root hands it the
    kernels' compute_mask, which activations and rules called directly both use."""
    import freegrad.kernels
    import freegrad.rules

    assert freegrad.rules.compute_mask is freegrad.kernels.compute_mask
    calls = []

    def spy(mask, x, params):
        calls.append(params)
        return freegrad.kernels.compute_mask(mask, x, params)

    monkeypatch.setattr(freegrad.rules, "compute_mask", spy)
    x, g, params = torch.randn(64), torch.randn(64), {"a": -0.25, "b": 0.5}
    mask = (x >= -0.25) & (x <= 0.5)
    assert torch.equal(fg.get("rectangular")(None, g, x, **params), g * mask)
    with fg.use("rectangular", params, scope="activations"):
        y = fg.Activation("Logistic")(x.requires_grad_(True))
    (grad,) = torch.autograd.grad(y, x, g)
    assert torch.equal(grad, g * mask) and calls == [params, params]
    assert torch.equal(freegrad.rules.plain_mask(fg.get("rectangular").mask, x, params), mask)


def test_forward_mode_under_no_grad_still_follows_the_rule():
    import torch.autograd.forward_ad as fwAD

    x, v = torch.randn(16), torch.randn(16)
    with fg.use("rectangular", scope="activations"), torch.no_grad(), fwAD.dual_level():
        tangent = fwAD.unpack_dual(fg.Activation("Logistic")(fwAD.make_dual(x, v))).tangent
    assert torch.equal(tangent, v * ((x >= -0.5) & (x <= 0.5)))
