"""Every registered rule against its documented formula, at chosen points."""

import math

import freegrad as fg
import pytest
import torch
from freegrad.forwards import FORWARDS

X = torch.tensor([-6.5, -5.0, -2.0, -1.0, -0.5, -0.25, 0.0, 0.3, 0.5, 1.0, 2.5, 5.0, 6.0, 7.0],
                 dtype=torch.float64)
G = torch.linspace(-1.5, 2.0, X.numel(), dtype=torch.float64)


def sig(t):
    return 1 / (1 + torch.exp(-t))


def ind(cond):
    return cond.to(torch.float64)


# name -> (params, expected grad_in as a function of (g, x));
# the formulas of docs/rules.md, written out.
FORMULAS = {
    "d(Linear)": ({}, lambda g, x: g),
    "d(ReLU)": ({}, lambda g, x: g * ind(x > 0)),
    "d(ReLU6)": ({}, lambda g, x: g * ind((x > 0) & (x < 6))),
    "d(LeakyReLU)": ({"negative_slope": 0.2}, lambda g, x: g * torch.where(x > 0, 1.0, 0.2)),
    "d(ELU)": ({"alpha": 0.7}, lambda g, x: g * torch.where(x > 0, 1.0, 0.7 * torch.exp(x))),
    "d(Tanh)": ({}, lambda g, x: g * (1 - torch.tanh(x) ** 2)),
    "d(Logistic)": ({}, lambda g, x: g * sig(x) * (1 - sig(x))),
    "d(SiLU)": ({}, lambda g, x: g * sig(x) * (1 + x * (1 - sig(x)))),
    "d(GELU)": ({}, lambda g, x: g * (0.5 * (1 + torch.erf(x / math.sqrt(2)))
                                     + x * torch.exp(-x * x / 2) / math.sqrt(2 * math.pi))),
    "d(Softplus)": ({"beta": 2.0, "threshold": 4.0},
                    lambda g, x: g * torch.where(2 * x > 4, 1.0, sig(2 * x))),
    "d(Heaviside)": ({}, lambda g, x: 0 * g),
    "d(Sign)": ({}, lambda g, x: 0 * g),
    "d(HardTanh)": ({"min_val": -2.0, "max_val": 2.5}, lambda g, x: g * ind((x > -2) & (x < 2.5))),
    "rectangular": ({"a": -0.5, "b": 1.0}, lambda g, x: g * ind((x >= -0.5) & (x <= 1.0))),
    "triangular": ({"width": 2.0}, lambda g, x: g * torch.clamp(1 - x.abs() / 2, min=0)),
    "scale": ({"s": -3.0}, lambda g, x: -3 * g),
    "clip_norm": ({"max_norm": 0.5},
                  lambda g, x: g * min(1.0, 0.5 / float(torch.sqrt((g**2).sum())))),
    "centralize": ({}, lambda g, x: g - g.mean()),
    "arctan": ({"alpha": 3.0}, lambda g, x: g * 1.5 / (1 + (math.pi / 2 * 3 * x) ** 2)),
    "fast_sigmoid": ({"slope": 10.0}, lambda g, x: g / (1 + 10 * x.abs()) ** 2),
    "sigmoid": ({"slope": 5.0}, lambda g, x: g * 5 * sig(5 * x) * (1 - sig(5 * x))),
    "gaussian": ({"sigma": 0.8},
                 lambda g, x: g * torch.exp(-(x**2) / (2 * 0.64)) / (0.8 * math.sqrt(2 * math.pi))),
    "straight_through": ({"threshold": 1.0}, lambda g, x: g * ind(x.abs() <= 1)),
}

# Stochastic rules: formula with the noise drawn from a generator seeded the same way.
NOISY = {
    "noise": ({"sigma": 0.3}, lambda g, x, n, u: g + 0.3 * n),
    "full_jam": ({}, lambda g, x, n, u: g * u),
    "positive_jam": ({}, lambda g, x, n, u: g * u * ind(x >= 0)),
    "rectangular_jam": ({"a": -2.0, "b": 2.5},
                        lambda g, x, n, u: g * u * ind((x >= -2) & (x <= 2.5))),
}
NOISY_OPTIONS = [
    ("noise", {"sigma": 0.3, "mode": "multiplicative"}, lambda g, x, n, u: g * (1 + 0.3 * n)),
    ("full_jam", {"mode": "sign"}, lambda g, x, n, u: torch.sign(g) * u),
    ("positive_jam", {"test": "grad"}, lambda g, x, n, u: g * u * ind(g >= 0)),
    ("positive_jam", {"test": "grad", "mode": "sign"},
     lambda g, x, n, u: torch.sign(g) * u * ind(g >= 0)),
    ("rectangular_jam", {"a": -0.5, "b": 0.5, "test": "grad"},
     lambda g, x, n, u: g * u * ind((g >= -0.5) & (g <= 0.5))),
    ("rectangular_jam", {"mode": "sign"},
     lambda g, x, n, u: torch.sign(g) * u * ind((x >= -5) & (x <= 5))),
]


def test_every_registered_rule_has_a_formula_test():
    assert set(fg.names("activations")) == set(FORMULAS) | set(NOISY)


def test_exactly_the_noisy_rules_are_marked_stochastic():
    assert {n for n in fg.names("activations") if fg.get(n).stochastic} == set(NOISY)
    assert fg.compose("rectangular", "noise").stochastic
    assert not fg.compose("rectangular").stochastic


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_rule_matches_formula_when_called(name):
    params, expected = FORMULAS[name]
    got = fg.get(name)(None, G, X, **params)
    torch.testing.assert_close(got, expected(G, X))


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_rule_matches_formula_through_activation(name):
    """The same formula from a real backward: forward-time residuals (masks) included."""
    x = X.clone().requires_grad_(True)
    params, expected = FORMULAS[name]
    with fg.use(name, params, scope="activations"):
        y = fg.Activation("Linear")(x)
    y.backward(G)
    torch.testing.assert_close(x.grad, expected(G, X))


def _generator(seed):
    gen = torch.Generator().manual_seed(seed)
    return gen


@pytest.mark.parametrize("name", sorted(NOISY))
def test_stochastic_rule_matches_formula(name):
    params, expected = NOISY[name]
    x = X.clone().requires_grad_(True)
    with fg.use(name, params, scope="activations", seed=11):
        fg.Activation("Linear")(x).backward(G)
    n = torch.randn(G.shape, generator=_generator(11), dtype=G.dtype)
    u = torch.rand(G.shape, generator=_generator(11), dtype=G.dtype)
    torch.testing.assert_close(x.grad, expected(G, X, n, u))


@pytest.mark.parametrize("name,params,expected", NOISY_OPTIONS)
def test_stochastic_rule_readings(name, params, expected):
    """The non-default readings: multiplicative noise, jamming on the gradient, sign mode."""
    x = X.clone().requires_grad_(True)
    with fg.use(name, params, scope="activations", seed=3):
        fg.Activation("Linear")(x).backward(G)
    n = torch.randn(G.shape, generator=_generator(3), dtype=G.dtype)
    u = torch.rand(G.shape, generator=_generator(3), dtype=G.dtype)
    torch.testing.assert_close(x.grad, expected(G, X, n, u))


def test_jamming_reading_on_grad_saves_nothing():
    assert fg.get("rectangular_jam").bind({"test": "grad"}).saves == "nothing"
    assert fg.get("rectangular_jam").bind({}).saves == "mask"


DERIVATIVE_POINTS = torch.tensor([-3.1, -1.7, -0.9, -0.3, 0.2, 0.45, 0.8, 1.3, 2.2, 3.7],
                                 dtype=torch.float64)
FORWARD_PARAMS = {
    "LeakyReLU": {"negative_slope": 0.1},
    "ELU": {"alpha": 0.5},
    "Softplus": {"beta": 2.0, "threshold": 3.0},
    "HardTanh": {"min_val": -1.5, "max_val": 2.0},
}


@pytest.mark.parametrize("forward", sorted(FORWARDS))
def test_derivative_rule_equals_autograd_of_forward(forward):
    params = FORWARD_PARAMS.get(forward, {})
    fn = FORWARDS[forward].bind(params)
    x = DERIVATIVE_POINTS.clone().requires_grad_(True)
    g = torch.linspace(-1, 1, x.numel(), dtype=torch.float64)
    if forward == "Heaviside":
        expected = torch.zeros_like(g)  # PyTorch has no heaviside derivative; it is 0 off x = 0
    else:
        (expected,) = torch.autograd.grad(fn(x), x, g)
    torch.testing.assert_close(fg.get(f"d({forward})")(None, g, x.detach(), **params), expected)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_derivative_both_approximations(approximate):
    x = DERIVATIVE_POINTS.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(torch.nn.functional.gelu(x, approximate=approximate).sum(), x)
    got = fg.get("d(GELU)")(None, torch.ones_like(x), x.detach(), approximate=approximate)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("forward", sorted(FORWARDS))
def test_derivative_rule_passes_gradcheck(forward):
    """Our backward under d(F) against finite differences of F, in float64."""
    params = FORWARD_PARAMS.get(forward, {})
    act = fg.Activation(forward, **params)
    x = DERIVATIVE_POINTS.clone().requires_grad_(True)
    with fg.use(f"d({forward})", params, scope="activations"):
        assert torch.autograd.gradcheck(act, (x,), eps=1e-6, atol=1e-5)


def test_rule_card_is_generated_from_registry():
    from pathlib import Path

    from freegrad import cards

    card = Path(__file__).resolve().parents[2] / "libs" / "freegrad" / "docs" / "rules.md"
    assert card.read_text(encoding="utf-8") == cards.render(), (
        "docs/rules.md is stale: run `python -m freegrad.cards libs/freegrad/docs/rules.md`"
    )


def _card_row(name: str) -> str:
    from freegrad import cards

    return next(row for row in cards.render().splitlines() if row.startswith(f"| `{name}` |"))


@pytest.mark.parametrize("saves", [lambda p: "input" if p["keep"] else "nothing", None],
                         ids=["undocumented", "documented"])
def test_the_card_says_jammings_test_cases_only_for_the_jamming_rules(saves):
    """A rule whose saves is a function is described by that function (its docstring's first
    line), not by the jamming rules' test='input' / test='grad' text."""
    if saves is None:
        def saves(params):
            """input (keep=True), nothing (keep=False)"""
            return "input" if params["keep"] else "nothing"

    @fg.register("test_saves_by_option", saves=saves)
    def keeps(ctx, grad_out, input, keep=True):
        return grad_out

    try:
        cell = _card_row("test_saves_by_option").split(" | ")[3]
        assert "test=" not in cell
        assert cell == ("input (keep=True), nothing (keep=False)" if saves.__doc__
                        else "depends on the parameters")
    finally:
        fg.unregister("test_saves_by_option")
    for jamming in ("positive_jam", "rectangular_jam"):
        assert _card_row(jamming).split(" | ")[3] == "mask (test='input'), nothing (test='grad')"


@pytest.mark.parametrize("name", sorted(set(FORMULAS) | set(NOISY)))
def test_every_rule_documents_formula_and_source(name):
    rule = fg.get(name)
    assert rule.formula and rule.formula != "(not documented)"
    assert rule.source and rule.source != "user rule"
