"""fg.strip: the inverse of fg.convert, giving plain torch modules that torch.export takes."""

import freegrad as fg
import pytest
import torch
from torch import nn

STANDARD = [
    nn.ReLU(), nn.ReLU(inplace=True), nn.ReLU6(inplace=True), nn.LeakyReLU(0.2),
    nn.LeakyReLU(0.1, inplace=True), nn.ELU(0.5), nn.ELU(inplace=True), nn.Tanh(), nn.Sigmoid(),
    nn.SiLU(), nn.SiLU(inplace=True), nn.GELU("tanh"), nn.GELU(),
    nn.Softplus(beta=2.0, threshold=5.0), nn.Hardtanh(-2.0, 3.0), nn.Hardtanh(inplace=True),
]


def _same_state(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("module", STANDARD, ids=repr)
def test_strip_gives_back_what_convert_took_out(module):
    model = nn.Sequential(nn.Linear(4, 6), module, nn.Linear(6, 2))
    x = torch.randn(8, 4) * 4
    converted, replaced = fg.convert(model, inplace=False)
    stripped, taken = fg.strip(converted, inplace=False)
    assert isinstance(converted[1], fg.Activation)  # inplace=False: the converted model is kept
    assert list(taken) == list(replaced) == ["1"] and repr(taken["1"]) == repr(converted[1])
    assert type(stripped[1]) is type(module) and repr(stripped[1]) == repr(module)
    assert _same_state(stripped, model)
    assert torch.equal(stripped(x), model(x))


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.BatchNorm2d(6), nn.ReLU(inplace=True),
            nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.Tanh(), nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(16 * 5 * 5, 32), nn.GELU("tanh"),
                                  nn.Dropout(0.1), nn.Linear(32, 10))
        self.out = nn.Sigmoid()

    def forward(self, x):
        return self.out(self.head(self.features(x)))


def _layout(model: nn.Module) -> list[tuple[str, str]]:
    return [(name, repr(m)) for name, m in model.named_modules() if not list(m.children())]


def test_strip_round_trips_convert_on_a_cnn_and_the_result_exports():
    torch.manual_seed(0)
    original = SmallCNN().eval()
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        before = original(x)
    model, replaced = fg.convert(original, inplace=False)
    assert sorted(replaced) == ["features.2", "features.5", "head.2", "out"]
    fg.attach_param_hooks(model)
    with fg.use("rectangular", scope="activations"):  # trained with a rule: the state changes
        model.train()
        model(x).sum().backward()
    model.eval()
    stripped, taken = fg.strip(model)
    assert stripped is model and sorted(taken) == sorted(replaced)
    assert _layout(stripped) == _layout(original)
    assert not any(isinstance(m, fg.Activation) for m in stripped.modules())
    assert _same_state(stripped, model)
    with torch.no_grad():
        stripped_out = stripped(x)
        assert torch.equal(fg.convert(stripped, inplace=False)[0](x), stripped_out)
    exported = torch.export.export(stripped, (x,))
    assert torch.equal(exported.module()(x), stripped_out)
    assert torch.equal(fg.strip(fg.convert(original, inplace=False)[0])[0](x), before)


@pytest.mark.parametrize("forward,params,expected", [
    ("Logistic", {}, nn.Sigmoid()), ("Linear", {}, nn.Identity()), ("ReLU", {}, nn.ReLU()),
    ("LeakyReLU", {"negative_slope": 0.2}, nn.LeakyReLU(0.2)),
    ("Softplus", {"beta": 3.0}, nn.Softplus(beta=3.0)), ("ReLU6", {}, nn.ReLU6()),
    ("HardTanh", {"min_val": -0.5, "max_val": 2.0}, nn.Hardtanh(-0.5, 2.0)),
    ("GELU", {"approximate": "tanh"}, nn.GELU("tanh")),
])
def test_an_activation_built_directly_becomes_its_torch_module(forward, params, expected):
    model = nn.Sequential(nn.Linear(3, 5), fg.Activation(forward, **params)).train(False)
    x = torch.randn(6, 3) * 3
    with torch.no_grad():
        before = model(x)
    fg.strip(model)
    assert type(model[1]) is type(expected) and repr(model[1]) == repr(expected)
    assert not model[1].training
    with torch.no_grad():
        assert torch.equal(model(x), before)


@pytest.mark.parametrize("forward", ["Heaviside", "Sign"])
def test_a_forward_with_no_torch_module_is_a_clear_error_and_nothing_changes(forward):
    model = nn.Sequential(fg.Activation("ReLU"), nn.Sequential(nn.Linear(2, 2),
                                                               fg.Activation(forward)))
    with pytest.raises(ValueError, match=rf"'1\.1' is fg\.Activation\('{forward}'\)"):
        fg.strip(model)
    assert isinstance(model[0], fg.Activation) and isinstance(model[1][1], fg.Activation)
