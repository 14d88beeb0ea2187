"""Learnable rule parameters: a per-layer nn.Parameter, kept positive by softplus, whose
gradient is that of the loss through the rule's primitive P_θ(x) = ∫₀ˣ rule_θ."""

import io
import math

import freegrad as fg
import pytest
import torch
from freegrad.context import Binding
from freegrad.learning import LearnedActivationFunction, positive, raw_for
from torch import nn

# (rule, param, value, points away from the kinks of P: |x| = width / threshold)
LEARNABLE = [
    ("triangular", "width", 0.8, [-2.0, -0.71, -0.3, -0.05, 0.02, 0.4, 0.77, 1.6]),
    ("straight_through", "threshold", 0.6, [-2.0, -0.9, -0.3, -0.05, 0.02, 0.4, 0.75, 1.6]),
    ("arctan", "alpha", 1.7, [-3.0, -0.9, -0.3, -0.05, 0.0, 0.02, 0.4, 2.5]),
    ("fast_sigmoid", "slope", 3.0, [-3.0, -0.9, -0.3, -0.05, 0.02, 0.4, 2.5]),
    ("sigmoid", "slope", 4.0, [-3.0, -0.9, -0.3, -0.05, 0.0, 0.02, 0.4, 2.5]),
    ("gaussian", "sigma", 0.7, [-3.0, -0.9, -0.3, -0.05, 0.0, 0.02, 0.4, 2.5]),
]
IDS = [f"{r}.{p}" for r, p, *_ in LEARNABLE]


def test_the_learnable_parameters_are_these():
    assert {(n, p) for n in fg.names() for p in getattr(fg.get(n), "learnable", ())} == {
        (r, p) for r, p, *_ in LEARNABLE}


def test_the_card_lists_each_learnable_parameter_with_its_formulas():
    from freegrad import cards

    card = cards.render()
    for rule, param, *_ in LEARNABLE:
        primitive = fg.get(rule).primitive
        row = [f"`{rule}`", f"`{param}`", primitive.formula, primitive.grads[param][1]]
        assert cards._row(row) in card.splitlines()


class Primitive(LearnedActivationFunction):
    """The learned node with P_θ as its forward: gradcheck then checks its backward, the
    library's, against finite differences of P in x and in θ."""

    @staticmethod
    def forward(x, fn, forward, binding, names_, *thetas):
        return fn(x, *thetas)


@pytest.mark.parametrize("rule, param, value, points", LEARNABLE, ids=IDS)
def test_gradcheck_the_rule_and_the_parameter_gradient_against_the_primitive(
        rule, param, value, points):
    r = fg.get(rule)
    binding = Binding(r.bind({param: value}), frozenset({"activations"}))

    def p(x, theta):
        return r.primitive.value(x, **{param: theta})

    x = torch.tensor(points, dtype=torch.float64, requires_grad=True)
    theta = torch.tensor(value, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, t: Primitive.apply(x, p, "Heaviside", binding, (param,), t), (x, theta),
        eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("rule, param, value, points", LEARNABLE, ids=IDS)
def test_the_primitive_is_zero_at_zero_and_its_derivative_the_rule(rule, param, value, points):
    r = fg.get(rule)
    x = torch.tensor(points, dtype=torch.float64, requires_grad=True)
    r.primitive.value(x, **{param: value}).sum().backward()
    ones = torch.ones_like(x)
    if r.saves != "mask":  # autograd of clamp, at points off its ends, is the window
        torch.testing.assert_close(x.grad, r(None, ones, x.detach(), **{param: value}))
    zero = r.primitive.value(torch.zeros(1, dtype=torch.float64), **{param: value})
    assert zero.item() == 0


@pytest.mark.parametrize("rule, param, value, points", LEARNABLE, ids=IDS)
def test_the_parameter_gradient_at_the_edges(rule, param, value, points):
    d = fg.get(rule).primitive.grads[param][0]
    x = torch.tensor([-math.inf, -0.0, 0.0, math.inf, math.nan], dtype=torch.float64)
    got = d(x, **{param: torch.tensor(value, dtype=torch.float64)})
    limit = {"triangular": 0.5, "straight_through": 1.0, "fast_sigmoid": -1 / value**2}
    at_inf = limit.get(rule, 0.0)
    assert got[[1, 2]].tolist() == [0.0, 0.0]
    torch.testing.assert_close(got[[0, 3]], torch.tensor([-at_inf, at_inf], dtype=torch.float64))
    if rule == "straight_through":
        assert got[4].item() == 0  # a mask rule: NaN is in no window, nor beyond it
    else:
        assert math.isnan(got[4])  # NaN in, NaN out


def test_the_reparametrisation_keeps_the_value_positive():
    for v in (1e-4, 0.3, 1.0, 7.5, 40.0):
        assert positive(torch.tensor(raw_for(v), dtype=torch.float64)).item() == pytest.approx(v)
    for raw in (-1e4, -200.0, -math.inf):
        assert positive(torch.tensor(raw)).item() > 0
    raw = torch.tensor(0.3, requires_grad=True)
    positive(raw).backward()
    assert raw.grad.item() == pytest.approx(torch.sigmoid(torch.tensor(0.3)).item())


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 5), fg.Activation("Tanh"), nn.Linear(5, 2),
                         fg.Activation("Heaviside"))


def test_a_layer_learns_its_own_value_and_its_gradients_are_the_rule_at_it():
    model = _model()
    made = fg.learnable(model, "triangular", "width", init=0.8)
    assert list(made) == ["1.learned.triangular.width", "3.learned.triangular.width"]
    assert {n for n, _ in model.named_parameters()} >= set(made)
    with torch.no_grad():
        made["3.learned.triangular.width"].fill_(raw_for(1.9))
    assert fg.learned_values(model) == pytest.approx(
        {"1.learned.triangular.width": 0.8, "3.learned.triangular.width": 1.9})
    x = torch.randn(7, 3)
    with fg.use("triangular", {"width": 5.0}, scope="activations"):  # the layers' values win
        model(x).sum().backward()
    learned = [p.grad.clone() for n, p in model.named_parameters() if n not in made]
    assert all(made[n].grad is not None and made[n].grad != 0 for n in made)
    plain = _model()  # the same weights, nothing learned
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if k not in made})
    with fg.use("triangular", {"width": 0.8}, scope="activations", layers=plain[1]), \
            fg.use("triangular", {"width": 1.9}, scope="activations", layers=plain[3]):
        plain(x).sum().backward()
    for a, b in zip(learned, [p.grad for p in plain.parameters()], strict=True):
        torch.testing.assert_close(a, b)


def test_the_width_gradient_is_the_sum_of_g_times_dP_dwidth():
    act = fg.Activation("Logistic")
    (raw,) = fg.learnable(act, "triangular", "width", init=0.6).values()
    x = torch.tensor([-1.0, -0.5, -0.1, 0.2, 0.59, 3.0], dtype=torch.float64)
    g = torch.tensor([0.3, -1.2, 2.0, 0.7, -0.4, 1.1], dtype=torch.float64)
    with fg.use("triangular", scope="activations"):
        y = act(x.clone().requires_grad_(True))
    y.backward(g)
    m = x.abs().clamp(max=0.6)
    dtheta = (g * torch.sign(x) * m * m / (2 * 0.6**2)).sum()
    expected = dtheta * torch.sigmoid(torch.tensor(raw_for(0.6), dtype=torch.float64))
    assert raw.grad.item() == pytest.approx(expected.item(), rel=1e-6)


def test_under_another_rule_or_none_the_learned_value_is_unused():
    model = _model()
    made = fg.learnable(model, "triangular", "width", init=0.8)
    x = torch.randn(4, 3)
    model[:2](x).sum().backward()  # no rule: the native backward
    with fg.use("rectangular", scope="activations"):
        model[:2](x).sum().backward()
    with fg.use(fg.blend("triangular", mix=0.5), scope="activations"):
        model[:2](x).sum().backward()
    assert all(p.grad is None for p in made.values())


def test_learnable_errors():
    model = _model()
    with pytest.raises(ValueError, match=r"rule 'rectangular' has no learnable parameter 'a' "
                                         r"\(it has none\); learnable: \{"):
        fg.learnable(model, "rectangular", "a", 0.5)
    with pytest.raises(ValueError, match=r"no learnable parameter 'widht' \(its learnable ones"):
        fg.learnable(model, "triangular", "widht", 0.5)
    with pytest.raises(ValueError, match="width=-0.5 must be > 0"):
        fg.learnable(model, "triangular", "width", -0.5)
    with pytest.raises(ValueError, match="holds no freegrad Activation"):
        fg.learnable(nn.Sequential(nn.Linear(2, 2), nn.ReLU()), "triangular", "width", 0.5)
    fg.learnable(model, "triangular", "width", 0.5, layers=fg.select(model, "1"))
    with pytest.raises(ValueError, match="layer '1' already learns 'triangular' 'width'"):
        fg.learnable(model, "triangular", "width", 0.5)


def test_learned_parameters_save_and_load():
    model = _model()
    fg.learnable(model, "arctan", "alpha", init=2.5)
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    assert fg.learned_values(loaded) == fg.learned_values(model)
    fresh = _model()
    fg.learnable(fresh, "arctan", "alpha", init=1.0)
    fresh.load_state_dict(model.state_dict())
    assert fg.learned_values(fresh) == pytest.approx(fg.learned_values(model))


# -- a LeNet-5 whose triangular widths train ----------------------------------------------

def lenet5(act) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), act(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5), act(), nn.AvgPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), act(), nn.Linear(120, 84), act(), nn.Linear(84, 10))


def test_a_lenet5_trains_with_a_learnable_triangular_width():
    torch.manual_seed(0)
    model = lenet5(lambda: fg.Activation("Tanh"))
    widths = fg.learnable(model, "triangular", "width", init=1.0)
    assert len(widths) == 4  # one per activation layer
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    y = torch.arange(32) % 10
    x = torch.randn(10, 1, 28, 28, generator=g)[y] + 0.5 * torch.randn(32, 1, 28, 28, generator=g)
    losses, seen = [], []
    with fg.use("triangular", scope="activations"):
        for _ in range(20):
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            assert all(w.grad is not None and w.grad.isfinite() and w.grad != 0
                       for w in widths.values())
            opt.step()
            losses.append(loss.item())
            seen.append(fg.learned_values(model))
    assert losses[-1] < 0.5 * losses[0], losses
    first, last = seen[0], seen[-1]
    assert all(abs(last[k] - first[k]) > 1e-3 for k in first), (first, last)  # they moved
    assert all(v > 0 for values in seen for v in values.values())
