"""convert() any model; limit rules to layers by name glob, type or predicate."""

import freegrad as fg
import pytest
import torch
import torchvision
from torch import nn

STANDARD = [
    (nn.ReLU(), "ReLU"), (nn.ReLU6(), "ReLU6"), (nn.LeakyReLU(0.2), "LeakyReLU"),
    (nn.ELU(0.5), "ELU"),
    (nn.Tanh(), "Tanh"), (nn.Sigmoid(), "Logistic"), (nn.SiLU(), "SiLU"), (nn.GELU("tanh"), "GELU"),
    (nn.Softplus(beta=2.0, threshold=5.0), "Softplus"), (nn.Hardtanh(-2.0, 3.0), "HardTanh"),
]


@pytest.mark.parametrize("module,forward", STANDARD, ids=[f for _, f in STANDARD])
def test_convert_each_standard_activation_keeps_its_forward(module, forward):
    model = nn.Sequential(nn.Linear(4, 16), module)
    x = torch.randn(8, 4) * 4
    before = model(x)
    converted, replaced = fg.convert(model, inplace=False)
    assert list(replaced) == ["1"] and type(replaced["1"]) is type(module)
    assert model[1] is module  # inplace=False: the original model is untouched
    assert isinstance(converted[1], fg.Activation) and converted[1].forward_name == forward
    torch.testing.assert_close(converted(x), before, rtol=0, atol=0)


def _grads(model, x):
    model.zero_grad()
    model(x).square().mean().backward()
    return [p.grad.clone() for p in model.parameters()]


def test_resnet18_is_bit_identical_after_conversion():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
    plain = _grads(model, x)
    _, replaced = fg.convert(model)
    assert len(replaced) == 9 and all(isinstance(m, nn.ReLU) for m in replaced.values())
    with torch.no_grad():
        assert torch.equal(model(x), before)
    for a, b in zip(plain, _grads(model, x), strict=True):
        assert torch.equal(a, b)
    with fg.use("d(Linear)", scope="activations"):
        assert not all(torch.equal(a, b) for a, b in zip(plain, _grads(model, x), strict=True))


def _net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Sequential(nn.Linear(3, 5), fg.Activation("Logistic")),  # "0", "0.0", "0.1"
        nn.Sequential(nn.Linear(5, 5), fg.Activation("Logistic")),  # "1", "1.0", "1.1"
        nn.Linear(5, 1),
    )


def _spy(seen, name):
    def rule(ctx, grad_out, input):
        seen.append(name)
        return grad_out

    return rule


def test_rule_limited_by_name_glob_reaches_only_those_layers():
    net, x = _net(), torch.randn(4, 3)
    seen = []
    with fg.use(_spy(seen, "rule"), scope="activations", layers=fg.select(net, "1.*")):
        y = net(x)
    y.sum().backward()
    assert seen == ["rule"]  # one activation of two
    limited = [p.grad.clone() for p in net.parameters()]
    everywhere = _grads_under(net, x, layers=None)
    module_form = _grads_under(net, x, layers=[net[1][1]])
    nothing = _grads_under(net, x, layers=[])
    for a, b in zip(limited, module_form, strict=True):
        torch.testing.assert_close(a, b)
    assert not torch.allclose(limited[0], everywhere[0])  # layer 0 kept its true derivative ...
    assert not torch.allclose(limited[0], nothing[0])  # ... below layer 1's constant one
    torch.testing.assert_close(limited[2], everywhere[2])  # layer 1 took the constant rule


def _grads_under(net, x, layers):
    net.zero_grad()
    if layers == []:
        net(x).sum().backward()
    else:
        with fg.use("d(Linear)", scope="activations", layers=layers):
            net(x).sum().backward()
    return [p.grad.clone() for p in net.parameters()]


def test_different_rules_on_different_layers_at_once():
    net, x = _net(), torch.randn(4, 3)
    seen = []
    with fg.use(_spy(seen, "first"), layers=fg.select(net, "0")), \
            fg.use(_spy(seen, "second"), layers=fg.select(net, "1")):
        net(x).sum().backward()
    assert sorted(seen) == ["first", "second"]


def test_select_by_type_and_predicate():
    net = _net()
    by_type = fg.select(net, fg.Activation)
    assert set(by_type) == {net[0][1], net[1][1]}
    by_pred = fg.select(net, lambda name, m: name.endswith(".1") and name.startswith("1"))
    assert set(by_pred) == {net[1][1]}
    assert "0.1" in by_type.names


def test_select_matching_nothing_is_an_error():
    with pytest.raises(ValueError, match="features"):
        fg.select(_net(), "features.*")


def test_params_rule_limited_to_layers():
    net, x = _net(), torch.randn(4, 3)
    fg.attach_param_hooks(net)
    plain = _grads(net, x)
    with fg.use("scale", {"s": 2.0}, scope="params", layers=fg.select(net, "2")):
        scaled = _grads(net, x)
    for (name, _), a, b in zip(net.named_parameters(), plain, scaled, strict=True):
        torch.testing.assert_close(b, 2 * a if name.startswith("2.") else a)


def test_functional_activation_follows_unlimited_rules_only():
    net = _net()
    x = torch.tensor([0.2, 3.0], requires_grad=True)
    with pytest.warns(UserWarning, match="changed nothing"):  # a limited rule misses it
        with fg.use("d(Linear)", layers=fg.select(net, "0")):
            fg.activation(x, "Logistic").sum().backward()
    s = torch.sigmoid(x.detach())
    torch.testing.assert_close(x.grad, s * (1 - s))
