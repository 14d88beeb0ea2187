"""Dtypes, autocast, torch.func and torch.compile through rule-carrying activations."""

import contextlib

import freegrad as fg
import pytest
import torch
from freegrad.functional import jvp, vjp

RULES = [("d(Linear)", {}), ("rectangular", {}), ("triangular", {}), ("noise", {"sigma": 0.1}),
         ("full_jam", {}), ("arctan", {})]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("rule,params", RULES)
def test_dtype_is_preserved(dtype, rule, params):
    x = torch.randn(32).to(dtype).requires_grad_(True)
    with fg.use(rule, params, scope="activations", seed=0):
        y = fg.Activation("Tanh")(x)
    assert y.dtype == dtype
    y.sum().backward()
    assert x.grad.dtype == dtype and x.grad.device == x.device
    assert torch.isfinite(x.grad).all()


def test_autocast_bfloat16_on_cpu():
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 8), fg.Activation("Logistic"), torch.nn.Linear(8, 1)
    )
    x = torch.randn(4, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16), fg.use("rectangular", scope="activations"):
        out = model(x)
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters())


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(6, 8), fg.Activation("Logistic"),
        torch.nn.Linear(8, 8), fg.Activation("ReLU"),
        torch.nn.Linear(8, 1),
    )


def _grads(model, x):
    model.zero_grad()
    model(x).sum().backward()
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_torch_compile_gives_eager_gradients_and_follows_the_rule_in_force(backend):
    model = _model()
    compiled = torch.compile(model, backend=backend)
    x = torch.randn(16, 6)
    for rule in [None, "rectangular", "d(Linear)", None]:
        with fg.use(rule, scope="activations") if rule else contextlib.nullcontext():
            eager, comp = _grads(model, x), _grads(compiled, x)
        for a, b in zip(eager, comp, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    with fg.use("d(Linear)", scope="activations"):
        const = _grads(model, x)
    assert not all(torch.allclose(a, b) for a, b in zip(const, _grads(model, x), strict=True))


def test_func_grad_and_vmap_through_an_activation():
    act = fg.Activation("Logistic")
    xs = torch.randn(5, 7, dtype=torch.float64)
    with fg.use("rectangular", scope="activations"):
        per_sample = torch.func.vmap(torch.func.grad(lambda x: act(x).sum()))(xs)
    torch.testing.assert_close(per_sample, ((xs >= -0.5) & (xs <= 0.5)).double())


def test_vjp_binds_the_rule_at_forward_time():
    x = torch.randn(9, dtype=torch.float64)
    y, vjp_fn = vjp(fg.Activation("Logistic"), x, rule="rectangular")
    torch.testing.assert_close(y, torch.sigmoid(x))
    v = torch.randn(9, dtype=torch.float64)
    torch.testing.assert_close(vjp_fn(v), v * ((x >= -0.5) & (x <= 0.5)).double())


def test_jvp_is_exact_forward_mode():
    x = torch.randn(9, dtype=torch.float64)
    v = torch.randn(9, dtype=torch.float64)
    s = torch.sigmoid(x)
    torch.testing.assert_close(jvp(fg.Activation("Logistic"), x, v), v * s * (1 - s),
                               rtol=1e-12, atol=0)
    torch.testing.assert_close(
        jvp(fg.Activation("Logistic"), x, v, rule="triangular", params={"width": 2.0}),
        v * (1 - x.abs() / 2).clamp_min(0),
    )


def test_jvp_and_vjp_agree_for_elementwise_rules():
    x = torch.randn(6, dtype=torch.float64)
    f = torch.nn.Sequential(fg.Activation("Tanh"))
    v = torch.eye(6, dtype=torch.float64)
    _, vjp_fn = vjp(f, x, rule="arctan")
    jac_rows = torch.stack([vjp_fn(e) for e in v])
    jac_cols = torch.stack([jvp(f, x, e, rule="arctan") for e in v], dim=1)
    torch.testing.assert_close(jac_rows, jac_cols)


def test_rule_gradients_support_double_backward():
    x = torch.randn(8, dtype=torch.float64, requires_grad=True)
    with fg.use("d(Logistic)", scope="activations"):
        y = fg.Activation("Heaviside")(x)
    (g,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad(g.sum(), x)
    s = torch.sigmoid(x)
    torch.testing.assert_close(gg, (s * (1 - s) * (1 - 2 * s)).detach())


def test_model_with_activations_pickles():
    import io

    model = _model()
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    x = torch.randn(3, 6)
    torch.testing.assert_close(loaded(x), model(x))
