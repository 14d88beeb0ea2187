"""The call forms of the published freegrad 1.0.1 keep working."""

import torch

import freegrad
import freegrad as fg
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
    for name in fg.__all__:
        assert hasattr(fg, name), name
    model = torch.nn.Linear(2, 1)
    attach_param_hooks(model)
    y, vjp_fn = vjp(torch.sigmoid, torch.zeros(2), rule="d(Linear)", params={})
    assert vjp_fn(torch.ones(2)).shape == (2,)
    assert jvp(torch.sigmoid, torch.zeros(2), torch.ones(2)).shape == (2,)
