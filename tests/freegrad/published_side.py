"""The published freegrad 1.0.1's side of tests/freegrad/test_against_published.py.

Run as ``python -P published_side.py CASES OUT`` with PYTHONPATH set to 1.0.1's own folder only
(it shares our import name), this computes each case's backward with 1.0.1 and saves the
gradients (or the error a case raised) to OUT. Cases and results are ``torch.save`` files; the
same case runs in the test against our freegrad, with the same calls (1.0.1's API, which ours
keeps). Nothing here imports the test or our freegrad.
"""

from __future__ import annotations

import sys
from pathlib import Path

import freegrad as fg
import torch
from freegrad.hook import attach_param_hooks


def activation_case(case: dict) -> torch.Tensor:
    """x.grad of ``Activation(forward)(x)``, under ``use(rule, params, "activations")`` if any."""
    x = case["x"].detach().to(case["dtype"], copy=True).requires_grad_(True)
    act = fg.Activation(case["forward"])
    if case["rule"] is None:
        y = act(x)
    else:
        with fg.use(rule=case["rule"], params=case["params"], scope="activations"):
            y = act(x)
    torch.manual_seed(case["seed"])  # the noisy rules draw from torch's global generator
    y.backward(case["g"].to(case["dtype"]))
    return x.grad


def params_case(case: dict) -> list[torch.Tensor]:
    """The weight and bias gradients of a Linear layer under ``use(rule, params, "params")``."""
    dtype = case["dtype"]
    layer = torch.nn.Linear(*case["weight"].shape[::-1], dtype=dtype)
    with torch.no_grad():
        layer.weight.copy_(case["weight"])
        layer.bias.copy_(case["bias"])
    attach_param_hooks(layer)
    with fg.use(rule=case["rule"], params=case["params"], scope="params"):
        y = layer(case["x"].to(dtype))
        torch.manual_seed(case["seed"])
        y.backward(case["g"].to(dtype))
    return [layer.weight.grad, layer.bias.grad]


def main(cases_file: str, out_file: str) -> None:
    from freegrad import registry, wrappers

    results = []
    for case in torch.load(cases_file):
        run = activation_case if case["kind"] == "activation" else params_case
        try:
            results.append(run(case))
        except Exception as exc:  # a case 1.0.1 cannot run is a result too
            results.append(f"{type(exc).__name__}: {exc}")
    torch.save({
        "version": fg.__version__, "file": str(Path(fg.__file__).resolve()),
        "rules": sorted(registry._RULES), "forwards": sorted(wrappers._FWD_MAP),
        "results": results,
    }, out_file)


if __name__ == "__main__":
    main(*sys.argv[1:])
