"""The call forms of the published freegrad 1.0.1 keep working."""

import freegrad
import freegrad as fg
import pytest
import torch
from freegrad.functional import jvp, vjp
from freegrad.hook import attach_param_hooks
from freegrad.wrappers import Activation


def test_readme_example_of_the_published_version():
    x = torch.tensor([-2.0, -0.5, 0.5, 2.0], requires_grad=True)
    act = Activation(forward="ReLU")
    with fg.use(rule="rectangular_jam", params={"a": -1.0, "b": 1.0}, scope="activations", seed=0):
        act(x).sum().backward()
    u = torch.rand(4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(x.grad, u * torch.tensor([0.0, 1.0, 1.0, 0.0]))


def test_published_style_user_rule_with_catch_all_kwargs():
    @fg.register("test_published_style")
    def halve(ctx, grad_out, input, **_):
        return grad_out * 0.5

    try:
        x = torch.ones(3, requires_grad=True)
        with fg.use("test_published_style"):
            Activation("Linear")(x).sum().backward()
        torch.testing.assert_close(x.grad, torch.full((3,), 0.5))
    finally:
        fg.unregister("test_published_style")


def test_rules_callable_directly_with_ctx_none():
    g, x = torch.ones(3), torch.tensor([-1.0, 0.0, 1.0])
    torch.testing.assert_close(fg.get("d(ReLU)")(None, g, x), torch.tensor([0.0, 0.0, 1.0]))
    torch.testing.assert_close(fg.get(lambda ctx, g, x: 2 * g)(None, g, x), 2 * g)


def test_module_layout_and_exports():
    assert fg.Activation is Activation
    assert hasattr(freegrad, "transforms") and isinstance(fg.__version__, str)
    assert issubclass(fg.RuleError, KeyError)
    # the rule classes live in freegrad.rules; freegrad.registry still names them
    for name in ("Rule", "Composite", "BoundRule", "BoundComposite", "AnyRule", "SAVES"):
        assert getattr(freegrad.registry, name) is getattr(freegrad.rules, name), name
    assert fg.Rule.__module__ == "freegrad.rules"
    for name in fg.__all__:
        assert hasattr(fg, name), name
    model = torch.nn.Linear(2, 1)
    attach_param_hooks(model)
    with pytest.warns(UserWarning, match="changed nothing"):  # torch.sigmoid is no freegrad layer
        y, vjp_fn = vjp(torch.sigmoid, torch.zeros(2), rule="d(Linear)", params={})
    assert vjp_fn(torch.ones(2)).shape == (2,)
    assert jvp(torch.sigmoid, torch.zeros(2), torch.ones(2)).shape == (2,)


def _plus_one(ctx, g, x, **_):
    return g + 1


def _triple(ctx, g, x, **_):
    return 3 * g


def test_default_saves_user_rule_on_params_receives_input_none():
    seen = []

    @fg.register("test_params_receive_none")
    def double(ctx, grad_out, input, **_):
        seen.append(input)
        return 2 * grad_out

    try:
        model = torch.nn.Linear(3, 1)
        attach_param_hooks(model)
        inp = torch.randn(4, 3)
        model(inp).sum().backward()
        plain = [p.grad.clone() for p in model.parameters()]
        model.zero_grad()
        with fg.use("test_params_receive_none", scope="params"):
            model(inp).sum().backward()
        assert seen == [None, None]  # weight and bias, each with input=None
        for p, g in zip(model.parameters(), plain, strict=True):
            torch.testing.assert_close(p.grad, 2 * g)
    finally:
        fg.unregister("test_params_receive_none")


def test_plain_function_rule_on_params_receives_input_none():
    model = torch.nn.Linear(2, 1)
    attach_param_hooks(model)
    with fg.use(lambda ctx, g, x: g * 0 if x is None else g, scope="params"):
        model(torch.ones(1, 2)).sum().backward()
    assert all((p.grad == 0).all() for p in model.parameters())


def test_compose_of_default_saves_rules_called_with_input_none():
    g = torch.tensor([0.0, 1.0])
    # parts apply in order: the first sees the incoming gradient
    torch.testing.assert_close(fg.compose(_plus_one, _triple)(None, g, None), (g + 1) * 3)
    torch.testing.assert_close(fg.compose(_triple, _plus_one)(None, g, None), 3 * g + 1)
    torch.testing.assert_close(fg.get(_plus_one)(None, g, None), g + 1)


def test_default_saves_rule_on_activations_still_receives_the_input():
    x = torch.tensor([-1.0, 2.0], requires_grad=True)
    with fg.use(lambda ctx, g, x: g * x, scope="activations"):
        Activation("Linear")(x).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([-1.0, 2.0]))


@pytest.mark.parametrize("rule", ["test_declares_input", "rectangular", "triangular", "d(Tanh)",
                                  "arctan", "test_declares_mask"])
def test_rules_declaring_the_input_are_a_clear_error_on_params(rule):
    fg.register("test_declares_input", saves="input")(_plus_one)
    fg.register("test_declares_mask", mask=fg.Interval(lambda: (0.0, 1.0)))(_plus_one)
    try:
        model = torch.nn.Linear(2, 1)
        attach_param_hooks(model)
        with fg.use(rule, scope="params"), pytest.raises(ValueError) as info:
            model(torch.ones(1, 2))
        assert f"rule {rule!r} needs the activation input" in str(info.value)
        assert "scope='activations'" in str(info.value)
        with pytest.raises(ValueError, match="needs the activation input"):
            fg.get(rule)(None, torch.ones(2), None)
        with pytest.raises(ValueError, match="needs the activation input"):
            fg.compose(_triple, rule)(None, torch.ones(2), None)
    finally:
        fg.unregister("test_declares_input")
        fg.unregister("test_declares_mask")


def test_a_mask_given_without_saves_is_a_mask_rule():
    rule = fg.register("test_mask_implied", mask=lambda x: x > 0)(lambda ctx, g, m: g * m)
    try:
        assert rule.saves == "mask" and rule.bind().needs_input
        x = torch.tensor([-1.0, 2.0], requires_grad=True)
        with fg.use("test_mask_implied", scope="activations"):
            Activation("Linear")(x).sum().backward()
        torch.testing.assert_close(x.grad, torch.tensor([0.0, 1.0]))
    finally:
        fg.unregister("test_mask_implied")
