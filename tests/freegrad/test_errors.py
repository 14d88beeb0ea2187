"""Bad input is an error naming what was wrong and what is accepted, never a silent no-op."""

import freegrad as fg
import pytest
import torch


@pytest.mark.parametrize(
    "rule,params,error,words",
    [
        ("rectangular", {"A": 1.0}, TypeError, ["'A'", "['a', 'b']"]),
        ("triangular", {"widht": 2.0}, TypeError, ["widht", "width"]),
        ("d(Linear)", {"s": 1.0}, TypeError, ["no parameters"]),
        ("rectangular", {"a": 1.0, "b": -1.0}, ValueError, ["a=1.0", "b=-1.0"]),
        ("rectangular", {"a": 0.5, "b": 0.5}, ValueError, ["a=0.5"]),
        ("triangular", {"width": 0.0}, ValueError, ["width=0.0", "> 0"]),
        ("noise", {"sigma": -0.1}, ValueError, ["sigma=-0.1", ">= 0"]),
        ("noise", {"mode": "multiplictive"}, ValueError,
         ["mode='multiplictive'", "['additive', 'multiplicative']"]),
        ("clip_norm", {"max_norm": 0}, ValueError, ["max_norm=0"]),
        ("scale", {"s": float("nan")}, ValueError, ["finite"]),
        ("scale", {"s": float("inf")}, ValueError, ["finite"]),
        ("scale", {"s": "2"}, TypeError, ["real number"]),
        ("full_jam", {"mode": "magnitude"}, ValueError, ["'magnitude'", "'scale'", "'sign'"]),
        ("positive_jam", {"test": "output"}, ValueError, ["'input'", "'grad'"]),
        ("centralize", {"keepdim": False}, ValueError, ["keepdim"]),
        ("arctan", {"alpha": -1.0}, ValueError, ["alpha"]),
    ],
)
def test_bad_params_fail_when_use_is_created(rule, params, error, words):
    with pytest.raises(error) as info:
        fg.use(rule, params)
    for w in words:
        assert w in str(info.value)


def test_unknown_rule_suggests_close_names():
    with pytest.raises(fg.RuleError) as info:
        fg.use("rectangualr")
    assert isinstance(info.value, KeyError)
    assert "'rectangular'" in str(info.value) and "did you mean" in str(info.value)


def test_duplicate_registration_is_an_error():
    with pytest.raises(fg.RuleError, match="already registered"):
        fg.register("rectangular")(lambda ctx, g, x: g)


def test_unknown_scope_lists_valid_ones():
    with pytest.raises(ValueError, match="activations"):
        fg.use("d(Linear)", scope="activation")


def test_unknown_forward_lists_valid_ones():
    with pytest.raises(ValueError, match="Logistic"):
        fg.Activation("Sigmoid")


def test_unknown_forward_param_is_an_error():
    with pytest.raises(TypeError, match="negative_slope"):
        fg.Activation("LeakyReLU", slope=0.1)


def test_rule_with_wrong_signature_is_rejected():
    with pytest.raises(TypeError, match="fn\\(ctx, grad_out, input"):
        fg.use(lambda g: g)


def test_seed_and_generator_are_exclusive_and_typed():
    with pytest.raises(ValueError):
        fg.use("noise", seed=1, generator=torch.Generator())
    with pytest.raises(TypeError):
        fg.use("noise", seed=1.5)


@pytest.mark.parametrize(
    "bad,words",
    [
        (lambda ctx, g, x: g[:-1], ["shape (3,)", "expected shape (4,)"]),
        (lambda ctx, g, x: g.double(), ["torch.float64", "torch.float32"]),
        (lambda ctx, g, x: 1.0, ["returned float"]),
    ],
)
def test_rule_returning_a_wrong_gradient_fails_at_backward_naming_the_rule(bad, words):
    x = torch.randn(4, requires_grad=True)
    with fg.use(bad, scope="activations"):
        y = fg.Activation("ReLU")(x).sum()
    with pytest.raises((RuntimeError, TypeError)) as info:
        y.backward()
    assert "<lambda>" in str(info.value)
    for w in words:
        assert w in str(info.value)


def test_missing_required_param():
    def needs(ctx, g, x, k):
        return g * k

    with pytest.raises(TypeError, match="needs parameter"):
        fg.use(needs)


def test_unknown_rule_message_names_it_once_with_the_suggestion():
    with pytest.raises(fg.RuleError) as info:
        fg.use("rectangulr")
    msg = str(info.value)
    assert msg.startswith("unknown rule 'rectangulr'; did you mean ['rectangular', ")
    assert msg.count("rectangulr") == 1 and msg.count("unknown rule") == 1
    assert "]? Registered rules: ['arctan', " in msg
    assert msg == info.value.args[0]  # not KeyError's quoted repr


def test_unknown_rule_without_a_close_name_is_one_sentence_then_the_list():
    with pytest.raises(fg.RuleError) as info:
        fg.compose("zzzz")
    assert str(info.value).startswith("unknown rule 'zzzz'. Registered rules: ['arctan', ")
