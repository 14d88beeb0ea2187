"""Differential test: our backward against the published freegrad 1.0.1's, whose API we keep.

``make install`` installs freegrad 1.0.1 from PyPI (hash-pinned, libs/freegrad/tests-published.txt)
into a folder of its own, ``.venv/freegrad-1.0.1``; it shares our import name, so it runs in a
subprocess whose PYTHONPATH is that folder alone (published_side.py). For every rule the two
share, every forward they share, every dtype and the parameters' defaults and other values, both
compute the backward of the same inputs - the ends of the rule's interval and their neighbours,
±0, ±inf, NaN, NaN and infinite gradients - and we must give the same bits, on the compiled
kernels and on the PyTorch ops. Where we differ on purpose, DIFFERENCES names the case and the
guide (docs/guide.md, "Differences from freegrad 1.0.1") says why.

The folder is ``$FREEGRAD_PUBLISHED`` (``make test`` sets it: missing is then a failure), else
``<the venv>/freegrad-1.0.1``; missing, the tests skip saying so, except in CI (``CI=true``).
"""

import math
import os
import subprocess
import sys
from pathlib import Path

import freegrad as fg
import pytest
import torch
import torch.nn.functional as F
from freegrad import kernels
from freegrad.forwards import FORWARDS
from freegrad.kernels import build

SIDE = Path(__file__).with_name("published_side.py")
VERSION = "1.0.1"
# 1.0.1's registry and forwards (the subprocess reports them; a change there fails a test)
PUBLISHED_RULES = ["centralize", "clip_norm", "d(Linear)", "d(ReLU)", "full_jam", "noise",
                   "positive_jam", "rectangular", "rectangular_jam", "scale", "triangular"]
PUBLISHED_FORWARDS = ["ELU", "GELU", "Heaviside", "LeakyReLU", "Linear", "Logistic", "ReLU",
                      "ReLU6", "SiLU", "Softplus", "Tanh"]
# values other than the defaults, per rule; the defaults ({}) run for every rule
OTHER_PARAMS = {"rectangular": {"a": -1.0, "b": 2.0}, "triangular": {"width": 0.5},
                "scale": {"s": -3.0}, "clip_norm": {"max_norm": 0.5}, "centralize": {"dim": 0},
                "noise": {"sigma": 0.3}, "rectangular_jam": {"a": -1.0, "b": 1.0}}
DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
G = [1.0, -2.5, 0.0, -0.0, math.nan, math.inf, -math.inf]
# Where we differ on purpose (the guide says why): the case, and what each side gives.
DIFFERENCES = {
    "no rule, Heaviside": "1.0.1 raises (PyTorch has no derivative of heaviside); ours is its "
                          "true derivative, 0",
    "no rule, ReLU6": "1.0.1 differentiates torch.clamp(x, 0, 6), ours F.relu6 (PyTorch's "
                      "hardtanh), as nn.ReLU6 does: they differ where those two backwards do "
                      "(at NaN; at exactly 0 and 6 before PyTorch made clamp's bounds strict)",
    "params, a rule that reads x": "ours refuses it with a clear error; 1.0.1 passes input=None: "
                                   "its d(ReLU) returns g, its positive_jam and rectangular_jam "
                                   "jam every entry, its rectangular and triangular fail",
}


def published_dir() -> Path:
    """1.0.1's folder, or a skip (a failure where it must be there) saying why."""
    given = os.environ.get("FREEGRAD_PUBLISHED")
    folder = Path(given) if given else Path(sys.prefix) / f"freegrad-{VERSION}"
    if (folder / "freegrad" / "__init__.py").is_file():
        return folder
    why = (f"freegrad {VERSION} is not installed in {folder}: `make install` puts it there "
           f"(pip install --no-deps --require-hashes --target {folder} "
           "-r libs/freegrad/tests-published.txt)")
    if given or os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(why)
    pytest.skip(why)


def edge_inputs(rule, params, dtype) -> torch.Tensor:
    """The rule's ends (ours, from its card) with their neighbours in ``dtype``, ±0, ±inf, NaN,
    the forwards' kinks, noise enough to fill the vectorised loops' blocks, and a NaN last, in
    their scalar tail (where PyTorch's hardtanh backward treats NaN differently)."""
    ends = []
    if rule is not None and fg.get(rule).edges.reads_x:
        merged = {k: v for k, v in fg.get(rule).defaults.items() if isinstance(v, float)} | params
        ends = [x for _, x in fg.get(rule).edges.end_points(merged)]
    fixed = [-0.0, 0.0, math.inf, -math.inf, math.nan, -1.0, 1.0, 6.0, -6.0, 0.3, 20.0]
    x = torch.tensor(ends + fixed, dtype=torch.float64).to(dtype)
    near = x[torch.isfinite(x)]
    noise = torch.randn(37, generator=torch.Generator().manual_seed(len(ends)), dtype=torch.float64)
    return torch.cat([x, torch.nextafter(near, near + 1), torch.nextafter(near, near - 1),
                      (noise * 3).to(dtype), torch.tensor([math.nan], dtype=dtype)])


def activation_cases(rule, params, forward, dtype, seed) -> list[dict]:
    """Two cases: every edge x against every g of G (a grid), and finite gradients."""
    x = edge_inputs(rule, params, dtype)
    grid_x = x[:, None].expand(-1, len(G)).contiguous()
    grid_g = torch.tensor(G, dtype=dtype).expand(x.numel(), -1).contiguous()
    finite = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed)).to(dtype)
    return [{"kind": "activation", "rule": rule, "params": params, "forward": forward,
             "dtype": dtype, "x": xs.double(), "g": gs.double(), "seed": seed + i}
            for i, (xs, gs) in enumerate(((grid_x, grid_g), (x, finite)))]


def params_case(rule, params, dtype, seed) -> dict:
    gen = torch.Generator().manual_seed(seed)
    weight, bias = torch.randn(3, 4, generator=gen), torch.randn(3, generator=gen)
    x, g = torch.randn(5, 4, generator=gen), torch.randn(5, 3, generator=gen)
    return {"kind": "params", "rule": rule, "params": params, "dtype": dtype,
            "weight": weight.to(dtype), "bias": bias.to(dtype), "x": x, "g": g, "seed": seed}


def all_cases() -> list[dict]:
    cases = []
    for dtype in DTYPES:
        for rule in [None, *PUBLISHED_RULES]:
            for params in [{}, OTHER_PARAMS.get(rule)] if rule in OTHER_PARAMS else [{}]:
                for forward in PUBLISHED_FORWARDS:
                    cases += activation_cases(rule, params, forward, dtype, len(cases))
                if rule is not None:
                    cases.append(params_case(rule, params, dtype, len(cases)))
    return cases


def _side():
    """published_side.py as a module: its calls, run here, use our freegrad."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("published_side", SIDE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


OURS = _side()


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """Every case and 1.0.1's result for it, from one subprocess."""
    folder = published_dir()
    work = tmp_path_factory.mktemp("published")
    cases = all_cases()
    torch.save(cases, work / "cases.pt")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(folder)}
    proc = subprocess.run([sys.executable, "-P", str(SIDE), "cases.pt", "out.pt"], cwd=work,
                          env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = torch.load(work / "out.pt")
    return {"folder": folder.resolve(), "cases": cases, **out}


@pytest.fixture(params=["compiled", "pytorch"])
def path(request, monkeypatch):
    """Our compiled kernels, then our PyTorch fallback."""
    if request.param == "compiled" and kernels.native() is None:
        pytest.skip(kernels.native_status())
    if request.param == "pytorch":
        monkeypatch.setattr(build, "_native", {"module": None, "status": "off (test)"})
    return request.param


def agree(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Elementwise: both NaN, or equal with the same sign (-0 is not +0)."""
    return (a.isnan() & b.isnan()) | ((a == b) & (a.signbit() == b.signbit()))


def same_bits(ours: torch.Tensor, theirs: torch.Tensor) -> bool:
    """Equal dtype, shape and values: NaN where the other is NaN, zeros of the same sign."""
    if ours.dtype != theirs.dtype or ours.shape != theirs.shape:
        return False
    return bool(agree(ours, theirs).all())


def _where(case: dict, ours: torch.Tensor, theirs: torch.Tensor) -> str:
    bad = ~agree(ours, theirs)
    x, g = case["x"].to(case["dtype"]), case["g"].to(case["dtype"])
    shown = [(x[i].item(), g[i].item(), ours[i].item(), theirs[i].item())
             for i in bad.nonzero(as_tuple=True)[0][:5].tolist()] if ours.dim() == 1 else [
             (x[i, j].item(), g[i, j].item(), ours[i, j].item(), theirs[i, j].item())
             for i, j in bad.nonzero().tolist()[:5]]
    return (f"{case['rule']} {case['params']} forward={case['forward']} {case['dtype']}: "
            f"(x, g, ours, 1.0.1) {shown}")


def test_the_published_version_ran_from_its_own_folder(published):
    assert published["version"] == VERSION
    assert Path(published["file"]).is_relative_to(published["folder"]), published["file"]
    assert published["rules"] == PUBLISHED_RULES and published["forwards"] == PUBLISHED_FORWARDS
    assert set(PUBLISHED_RULES) <= set(fg.names()) and set(PUBLISHED_FORWARDS) <= set(FORWARDS)


@pytest.mark.parametrize("rule", PUBLISHED_RULES)
def test_the_same_backward_as_published(rule, path, published):
    """Every forward, dtype, parameter set and edge input: the same bits (noisy rules: the same
    draws from torch's global generator)."""
    mismatches, n = [], 0
    for case, theirs in zip(published["cases"], published["results"], strict=True):
        if case["kind"] != "activation" or case["rule"] != rule:
            continue
        n += 1
        assert isinstance(theirs, torch.Tensor), f"1.0.1 failed: {theirs}"
        ours = OURS.activation_case(case)
        if not same_bits(ours, theirs):
            mismatches.append(_where(case, ours, theirs))
    assert n >= len(DTYPES) * len(PUBLISHED_FORWARDS) * 2 and not mismatches, mismatches[:3]


def test_with_no_rule_the_same_backward_but_where_named(path, published):
    """The native op's backward (true derivatives), but for DIFFERENCES' two forwards."""
    relu6_differs = False
    for case, theirs in zip(published["cases"], published["results"], strict=True):
        if case["kind"] != "activation" or case["rule"] is not None:
            continue
        ours = OURS.activation_case(case)
        if case["forward"] == "Heaviside":  # DIFFERENCES["no rule, Heaviside"]
            assert isinstance(theirs, str) and "heaviside" in theirs, theirs
            assert torch.equal(ours, torch.zeros_like(ours))
            continue
        if case["forward"] == "ReLU6":  # DIFFERENCES["no rule, ReLU6"]
            x = case["x"].to(case["dtype"], copy=True).requires_grad_(True)
            g = case["g"].to(case["dtype"])
            (clamp,) = torch.autograd.grad(torch.clamp(x, 0.0, 6.0), x, g)
            (relu6,) = torch.autograd.grad(F.relu6(x), x, g)
            assert same_bits(theirs, clamp) and same_bits(ours, relu6)
            same = agree(clamp, relu6)
            relu6_differs |= not bool(same.all())
            theirs = torch.where(same, theirs, ours)  # compared where clamp is relu6
        assert same_bits(ours, theirs), _where(case, ours, theirs)
    assert relu6_differs, "1.0.1's ReLU6 no longer differs from ours: DIFFERENCES is stale"


@pytest.mark.parametrize("rule", PUBLISHED_RULES)
def test_parameter_gradients_as_published_for_the_rules_that_do_not_read_x(rule, path,
                                                                            published):
    for case, theirs in zip(published["cases"], published["results"], strict=True):
        if case["kind"] != "params" or case["rule"] != rule:
            continue
        if fg.get(rule).bind(case["params"]).needs_input:  # DIFFERENCES["params, a rule ..."]
            with pytest.raises(ValueError, match="needs the activation input"):
                OURS.params_case(case)
            assert isinstance(theirs, str) == (rule in ("rectangular", "triangular")), theirs
            continue
        ours = OURS.params_case(case)
        assert all(same_bits(a, b) for a, b in zip(ours, theirs, strict=True)), (case, ours)
