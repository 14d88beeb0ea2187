"""A `use` block that cannot or did not change anything says so."""

import re
import warnings
from pathlib import Path

import freegrad as fg
import pytest
import torch
from torch import nn

CHANGED_NOTHING = r"use\('rectangular', scope='activations'\) changed nothing.*fg\.convert"


def plain_model():
    """torchvision style: standard activation modules, no fg.convert."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 1), nn.Sigmoid())


def converted_model():
    return fg.convert(plain_model())[0]


X = torch.randn(2, 1, 4, 4)


def test_layers_holding_no_freegrad_activation_are_an_error_at_entry():
    model = plain_model()
    block = fg.use("rectangular", scope="activations", layers=fg.select(model, nn.Conv2d))
    with pytest.raises(ValueError) as info, block:
        pass
    msg = str(info.value)
    assert "use('rectangular', scope='activations', layers=...)" in msg
    assert "['0']" in msg and "no freegrad Activation" in msg and "fg.convert(model)" in msg


def test_selecting_only_convolutions_of_a_converted_model_is_an_error_too():
    model = converted_model()
    with pytest.raises(ValueError, match=r"\['0'\] hold no freegrad Activation"):
        with fg.use("d(Linear)", scope="activations", layers=fg.select(model, nn.Conv2d)):
            pass
    with pytest.raises(ValueError, match=r"\['Conv2d'\] hold no"):  # modules given directly
        with fg.use("d(Linear)", scope="activations", layers=[model[0]]):
            pass


def test_params_scope_on_layers_without_parameter_hooks_is_an_error_at_entry():
    model = converted_model()
    with pytest.raises(ValueError, match=r"scope='params'.*fg\.attach_param_hooks\(model\)"):
        with fg.use("scale", scope="params", layers=fg.select(model, nn.Conv2d)):
            pass


def test_a_selection_one_scope_acts_on_is_accepted():
    model = plain_model()
    fg.attach_param_hooks(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with fg.use("scale", {"s": 2.0}, layers=fg.select(model, nn.Conv2d)):  # "all": params
            model(X).sum().backward()


def test_what_takes_a_rule_is_known_by_its_marker_subclasses_and_removed_hooks_included():
    """context.py imports neither fg.Activation nor the parameter hooks: they carry markers."""

    class Custom(fg.Activation):
        pass

    act = Custom("Tanh")
    with fg.use("d(Linear)", scope="activations", layers=[act]):
        act(torch.ones(1, requires_grad=True))
    model = plain_model()
    handles = fg.attach_param_hooks(model)
    with fg.use("scale", scope="params", layers=[model[0]]):
        model(X)
    handles.remove()
    with pytest.raises(ValueError, match=r"\['Conv2d'\] hold no module with parameter hooks"):
        with fg.use("scale", scope="params", layers=[model[0]]):
            pass


@pytest.mark.parametrize("case", ["unconverted model", "only the backward inside",
                                  "forward without gradients"])
def test_a_block_in_which_no_forward_took_the_rule_warns_once_at_exit(case):
    model = plain_model() if case == "unconverted model" else converted_model()
    out = model(X) if case == "only the backward inside" else None
    with pytest.warns(UserWarning, match=CHANGED_NOTHING) as record:
        with fg.use("rectangular", scope="activations"):
            for _ in range(3):
                if case == "unconverted model":
                    out = model(X)
                elif case == "forward without gradients":
                    with torch.no_grad():
                        model(X)
            if out is not None:
                out.sum().backward()
    assert len([w for w in record if "changed nothing" in str(w.message)]) == 1


def test_params_scope_without_hooks_warns_naming_attach_param_hooks():
    model = converted_model()
    with pytest.warns(UserWarning, match=r"scope='params'\) changed nothing.*attach_param_hooks"):
        with fg.use("scale", scope="params"):
            model(X).sum().backward()


def test_no_warning_for_a_converted_model_nor_for_a_block_left_by_an_exception():
    model = converted_model()
    fg.attach_param_hooks(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with fg.use("rectangular", scope="activations"):
            model(X).sum().backward()
        with fg.use("rectangular", scope="activations", layers=fg.select(model, "1")):
            model(X).sum().backward()
        with fg.use("scale", scope="params"):
            model(X).sum().backward()
        with fg.use("d(Linear)"):
            model(X).sum().backward()
            with fg.exact():  # exact binds nothing and never warns
                model(X).sum().backward()
        with pytest.raises(RuntimeError), fg.use("rectangular"):
            raise RuntimeError("the block is left by an exception")


def test_no_warning_under_torch_func_and_torch_compile():
    act, model = fg.Activation("Logistic"), converted_model()
    compiled = torch.compile(model, backend="aot_eager")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="use\\(")  # torch's own warnings stay warnings
        with fg.use("rectangular", scope="activations"):
            torch.func.vmap(torch.func.grad(lambda x: act(x).sum()))(torch.randn(3, 4))
        with fg.use("rectangular", scope="activations"):
            fg.functional.jvp(act, torch.randn(4), torch.ones(4))
        for _ in range(2):  # compiling, then the compiled code alone
            with fg.use("rectangular", scope="activations"):
                compiled(X).sum().backward()


def test_the_guides_select_example_binds_every_rule_it_names():
    guide = (Path(__file__).resolve().parents[2] / "libs/freegrad/docs/guide.md").read_text()
    code = re.search(r"## Some layers only.*?```python\n(.*?)```", guide, re.S).group(1)
    torch.manual_seed(0)
    scope = {"fg": fg, "nn": nn, "torchvision": pytest.importorskip("torchvision"),
             "x": torch.randn(2, 3, 32, 32), "y": torch.tensor([1, 2]),
             "loss_fn": nn.CrossEntropyLoss()}
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="use\\(")
        exec(code, scope)
    scope["loss"].backward()
    assert scope["model"].conv1.weight.grad.norm() <= 1.0 + 1e-6  # clip_norm reached conv1
