"""The edges contract: every rule's card states its backward at the ends of its interval, at
±0, ±inf and NaN, and what a NaN or infinite gradient gives; here each statement is pinned in
float16, bfloat16, float32 and float64, on the compiled kernels and on the PyTorch ops."""

import math

import freegrad as fg
import pytest
import torch
from freegrad import kernels
from freegrad.edges import GRAD, UNIFORM, Edges, describe
from freegrad.forwards import FORWARDS
from freegrad.kernels import NATIVE_DTYPES, build

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
RULES = fg.names("activations")  # built-in gradient rules (no user rule registered yet)
SEED = 7
G = [1.0, -2.5, 0.0, -0.0, math.nan, math.inf, -math.inf]  # incoming gradients at each edge


class Spy:
    """The compiled module, counting its calls."""

    def __init__(self, real):
        self.real, self.calls = real, 0

    def __getattr__(self, name):
        fn = getattr(self.real, name)

        def counted(*args):
            self.calls += 1
            return fn(*args)

        return counted


@pytest.fixture(params=["compiled", "pytorch"])
def path(request, monkeypatch):
    """The compiled kernels (a spy on them), then the PyTorch fallback (None)."""
    if request.param == "pytorch":
        monkeypatch.setattr(build, "_native", {"module": None, "status": "off (test)"})
        return None
    if kernels.native() is None:
        pytest.skip(kernels.native_status())
    spy = Spy(kernels.native())
    monkeypatch.setitem(build._native, "module", spy)
    return spy


def backward(name, x, g, forward="Linear"):
    """x.grad of ``Activation(forward)(x)`` under ``name`` (its defaults), seeded."""
    x = x.clone().requires_grad_(True)
    with fg.use(name, scope="activations", seed=SEED):
        y = fg.Activation(forward)(x)
    y.backward(g)
    return x.grad


def uniform(shape, dtype):
    """The u a jamming rule draws under use(seed=SEED)."""
    return torch.rand(shape, generator=torch.Generator().manual_seed(SEED), dtype=dtype)


def close(got, want, dtype, what=""):
    """NaN where want is NaN, the same infinities, else within two of the dtype's steps (exact
    where want is 0)."""
    what = (what, got, want)
    assert torch.equal(got.isnan(), want.isnan()), what
    fin = ~want.isnan()
    got, want = got[fin].double(), want[fin].double()
    assert torch.equal(got.isinf() & (got > 0), want.isinf() & (want > 0)), what
    assert torch.equal(got.isinf() & (got < 0), want.isinf() & (want < 0)), what
    fin = torch.isfinite(want)
    eps = torch.finfo(dtype).eps
    assert ((got[fin] - want[fin]).abs() <= 2 * eps * want[fin].abs()).all(), what


def edge_points(name):
    rule = fg.get(name)
    return rule.edges.points({k: v for k, v in rule.defaults.items() if isinstance(v, float)})


def expected(values, dtype):
    """The card's values for g = 1, u drawn as the rule draws it."""
    u = uniform((len(values),), dtype)
    return torch.stack([u[i] if v == UNIFORM else torch.tensor(float(v), dtype=dtype)
                        for i, v in enumerate(values)])


def test_every_builtin_rule_states_its_edges_and_every_grad_key_is_checked():
    assert [n for n in RULES if not isinstance(fg.get(n).edges, Edges)] == []
    assert set(GRAD) == set(GRAD_CHECKS)


@pytest.mark.parametrize("forward", ["Linear", "Logistic"])  # Logistic: the fused forward
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", [n for n in RULES if fg.get(n).edges.reads_x])
def test_the_backward_at_each_edge_is_the_cards(name, dtype, forward, path):
    rule = fg.get(name)
    labels, xs, values = zip(*edge_points(name), strict=True)
    x = torch.tensor(xs, dtype=torch.float64).to(dtype)
    assert torch.equal(x.double()[:-1], torch.tensor(xs[:-1], dtype=torch.float64))  # exact ends
    got = backward(name, x, torch.ones_like(x), forward)
    want = expected(values, dtype)
    for i, label in enumerate(labels):
        close(got[i:i + 1], want[i:i + 1], dtype, f"{name} at {label}: {describe(values[i])}")
    if path is not None and dtype in NATIVE_DTYPES and rule.saves == "mask":
        assert path.calls > 0  # the compiled kernels did take it


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", [n for n in RULES if not fg.get(n).edges.reads_x])
def test_a_rule_that_does_not_read_x_is_the_same_at_every_x(name, dtype, path):
    edges = torch.tensor([-0.0, 0.0, -math.inf, math.inf, math.nan, -0.5, 0.5, 6.0]).to(dtype)
    g = torch.randn(edges.numel(), generator=torch.Generator().manual_seed(1)).to(dtype)
    anywhere = torch.full_like(edges, 0.3)
    assert torch.equal(backward(name, edges, g), backward(name, anywhere, g))


def _grid(name, dtype):
    """x[i, j] the i-th edge (and an ordinary 0.3), g[i, j] the j-th of G."""
    xs = [x for _, x, _ in edge_points(name)] if fg.get(name).edges.reads_x else [0.0]
    x = torch.tensor(xs + [0.3], dtype=torch.float64).to(dtype)
    g = torch.tensor(G, dtype=dtype)
    return x[:, None].expand(-1, g.numel()).contiguous(), g.expand(x.numel(), -1).contiguous()


def _product(name, dtype):
    x, g = _grid(name, dtype)
    close(backward(name, x, g), g * backward(name, x, torch.ones_like(g)), dtype)


def _zero(name, dtype):
    x, g = _grid(name, dtype)
    got = backward(name, x, g)
    assert torch.equal(got, torch.zeros_like(got))


def _sum(name, dtype):
    x, g = _grid(name, dtype)
    got = backward(name, x, g)
    assert torch.equal(got.isnan(), g.isnan()) and torch.equal(got[g.isinf()], g[g.isinf()])
    assert torch.isfinite(got[torch.isfinite(g)]).all()


def _norm(name, dtype):
    g = torch.randn(12, generator=torch.Generator().manual_seed(2)).to(dtype)
    x = torch.zeros_like(g)
    with_nan = g.clone()
    with_nan[3] = math.nan
    assert backward(name, x, with_nan).isnan().all()
    with_inf = g.clone()
    with_inf[3], with_inf[5] = math.inf, -math.inf
    got = backward(name, x, with_inf)
    assert got[[3, 5]].isnan().all() and (got[torch.isfinite(with_inf)] == 0).all()
    assert torch.isfinite(backward(name, x, g)).all()


def _slice(name, dtype):
    g = torch.randn(3, 5, generator=torch.Generator().manual_seed(3)).to(dtype)
    g[0, 1], g[1, 4] = math.nan, math.inf
    got = backward(name, torch.zeros_like(g), g)  # dim=-1: each row is a slice
    assert got[0].isnan().all() and not torch.isfinite(got[1]).any()
    assert torch.isfinite(got[2]).all()


GRAD_CHECKS = {"product": _product, "zero": _zero, "sum": _sum, "norm": _norm, "slice": _slice}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", RULES)
def test_a_nan_or_infinite_gradient_gives_what_the_card_says(name, dtype, path):
    GRAD_CHECKS[fg.get(name).edges.grad](name, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("forward", sorted(f for f in FORWARDS if FORWARDS[f].native_grad))
def test_true_derivatives_are_pytorchs_own_at_every_edge_but_nan(forward, dtype):
    """d(F) against the backward of F's own op. At NaN PyTorch's relu passes g, and its hardtanh
    (relu6) and elu give one value in their vectorised loops and another in the scalar tail;
    d(F) states one value at NaN (its card's), wherever the element is."""
    name = f"d({forward})"
    inside = [-6.0, -1.5, 0.3, 2.0, 7.0] if dtype in NATIVE_DTYPES else []  # 16 bits: rounding
    x = torch.tensor([x for _, x, _ in edge_points(name)] + inside, dtype=torch.float64).to(dtype)
    x = x[~x.isnan()].requires_grad_(True)
    (own,) = torch.autograd.grad(FORWARDS[forward].fn(x), x, torch.ones_like(x))
    got = fg.get(name)(None, torch.ones_like(x), x.detach())
    torch.testing.assert_close(got, own, equal_nan=True)
