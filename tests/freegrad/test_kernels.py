"""Mask kernels: the compiled loops and every PyTorch fallback give the same values."""

import importlib.util
import math
import os
import re
import shutil
from types import SimpleNamespace

import freegrad as fg
import pytest
import torch
from freegrad import kernels
from freegrad.interval import Interval
from freegrad.kernels import CHUNK, MIN_CHUNKED, apply_mask, build, compute_mask, ops
from freegrad.transforms.jamming import _jam

INTERVAL_RULES = sorted(n for n in fg.names()
                        if isinstance(getattr(fg.get(n), "mask", None), Interval))


@pytest.fixture(params=["compiled", "pytorch"])
def path(request, monkeypatch):
    """Run a test on the compiled kernels and again on the PyTorch fallback."""
    if request.param == "compiled":
        if kernels.native() is None:
            pytest.skip(kernels.native_status())
    else:
        monkeypatch.setattr(build, "_native", {"module": None, "status": "off (test)"})
    return request.param


def _edge_values(lo: float, hi: float, dtype) -> torch.Tensor:
    """Both ends, their float neighbours, infinities, NaN, signed zeros, and noise."""
    ends = torch.tensor([lo, hi], dtype=torch.float64).to(dtype)
    finite = ends[torch.isfinite(ends)]
    up, down = torch.nextafter(finite, finite + 1), torch.nextafter(finite, finite - 1)
    near = torch.cat([finite, up, down])
    special = torch.tensor([math.inf, -math.inf, math.nan, 0.0, -0.0], dtype=dtype)
    return torch.cat([near, special, torch.randn(70_000, dtype=dtype) * 4])  # > one thread's grain


def test_builtin_masks_are_intervals():
    assert {"rectangular", "d(ReLU)", "d(ReLU6)", "d(LeakyReLU)", "d(HardTanh)", "positive_jam",
            "rectangular_jam", "straight_through"} <= set(INTERVAL_RULES)


def test_compiled_kernels_are_built_where_a_compiler_and_ninja_exist():
    if shutil.which("c++") is None or importlib.util.find_spec("ninja") is None:
        pytest.skip("no C++ compiler or ninja: the fallback is tested below")
    if os.environ.get("FREEGRAD_NATIVE") == "0":
        pytest.skip("FREEGRAD_NATIVE=0")
    assert kernels.native_status().startswith("in use"), kernels.native_status()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", INTERVAL_RULES)
def test_interval_mask_equals_its_formula_at_the_ends(name, dtype, path):
    rule = fg.get(name)
    for params in (rule.defaults, {k: v * 0.3 if isinstance(v, float) else v
                                   for k, v in rule.defaults.items()}):
        lo, hi = rule.mask.bounds(**params)
        x = _edge_values(lo, hi, dtype)
        # the ends rounded to the dtype, as torch compares with a Python number
        lo_t, hi_t = (torch.tensor(v, dtype=dtype) for v in (lo, hi))
        above = x >= lo_t if rule.mask.closed[0] else x > lo_t
        below = x <= hi_t if rule.mask.closed[1] else x < hi_t
        assert torch.equal(compute_mask(rule.mask, x, params), above & below), params


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("numel", [MIN_CHUNKED, MIN_CHUNKED + CHUNK // 3, 70_000, 10])
def test_apply_mask_equals_plain_product(dtype, numel, path):
    g = torch.randn(numel).to(dtype)
    g[:4] = torch.tensor([math.nan, -1.0, math.inf, -0.0])  # NaN·0 stays NaN, -1·0 is -0
    m = torch.rand(numel) > 0.4
    m[:4] = False
    got, want = apply_mask(g, m), g * m
    assert torch.equal(got.isnan(), want.isnan())
    assert torch.equal(got.nan_to_num(), want.nan_to_num())
    assert torch.equal(got.signbit(), want.signbit())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("numel", [MIN_CHUNKED + 5, 70_000, 10])
@pytest.mark.parametrize("outside", [0.01, -3.0, 1e-300])
def test_apply_mask_with_outside_is_a_where(dtype, numel, outside, path):
    """d(LeakyReLU)'s backward: g inside the mask, g · outside (rounded to g's dtype) outside."""
    g = torch.randn(numel).to(dtype) * 10
    g[:5] = torch.tensor([math.nan, -1.0, math.inf, -0.0, -math.inf])
    m = torch.rand(numel) > 0.4
    m[:2] = False
    got, want = apply_mask(g, m, outside=outside), torch.where(m, g, g * outside)
    assert torch.equal(got.view(torch.uint8), want.view(torch.uint8))  # bit for bit, NaN too


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "transposed"])
@pytest.mark.parametrize("masked", [True, False], ids=["mask", "no mask"])
def test_jam_draws_what_torch_rand_draws_and_leaves_the_generator_alike(dtype, layout, masked,
                                                                         path):
    """The jamming rules' (g · u) · mask, compiled or not: u is torch.rand(g.shape, generator)'s
    numbers, in g's logical order whatever its memory layout, and the generator ends in the same
    state."""
    g = torch.randn(16, 6, 28, 29, dtype=dtype) * 4
    g[0, 0, 0, :4] = torch.tensor([math.nan, math.inf, -0.0, -math.inf])
    g = {"contiguous": g, "channels_last": g.contiguous(memory_format=torch.channels_last),
         "transposed": g.transpose(1, 3).contiguous().transpose(1, 3)}[layout]
    mask = torch.rand(g.shape) > 0.4
    mask = torch.empty_like(g, dtype=torch.bool).copy_(mask) if masked else None  # g's layout
    ours, theirs = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    got = _jam(SimpleNamespace(generator=ours), g, "scale", mask)
    want = g * torch.rand(g.shape, generator=theirs, dtype=dtype)
    if masked:
        want = want * mask
    bits = {torch.float32: torch.int32, torch.float64: torch.int64}[dtype]
    assert torch.equal(got.contiguous().view(bits), want.contiguous().view(bits))  # NaN too
    assert got.stride() == g.stride()
    assert torch.equal(ours.get_state(), theirs.get_state())
    torch.manual_seed(11)  # no generator: torch's global one, as torch.rand
    got = _jam(None, g, "scale", mask)
    torch.manual_seed(11)
    want = g * torch.rand(g.shape, dtype=dtype)
    assert torch.equal((want * mask if masked else want).nan_to_num(), got.nan_to_num())


@pytest.mark.parametrize("make", [lambda: torch.tensor(2.5), lambda: torch.randn(0, 3),
                                  lambda: torch.randn(5, 1, 3).transpose(0, 2),
                                  lambda: torch.randn(2, 4, 3, 5).transpose(1, 2)],
                         ids=["0-d", "empty", "size-1 dim", "permuted"])
def test_the_compiled_jam_takes_any_dense_tensor_in_logical_order(make):
    if kernels.native() is None:
        pytest.skip(kernels.native_status())
    g = make()
    ours, theirs = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    got = kernels.native().jammed_grad(g, None, ours)
    assert torch.equal(got, g * torch.rand(g.shape, generator=theirs))
    assert got.stride() == g.stride()
    assert torch.equal(ours.get_state(), theirs.get_state())


def test_large_rectangular_backward_matches_formula(path):
    x = torch.randn(1024, 1025, requires_grad=True)  # above MIN_CHUNKED, not a multiple of CHUNK
    g = torch.randn(1024, 1025)
    with fg.use("rectangular", scope="activations"):
        fg.Activation("ReLU")(x).backward(g)
    assert torch.equal(x.grad, g * ((x >= -0.5) & (x <= 0.5)))


def test_non_contiguous_and_grad_mode_take_the_plain_path(path):
    g = torch.randn(2048, 1024).t()
    m = torch.rand(1024, 2048) > 0.5
    assert torch.equal(apply_mask(g, m), g * m)
    with torch.enable_grad():
        gg = torch.randn(MIN_CHUNKED, requires_grad=True)
        out = apply_mask(gg, torch.ones(MIN_CHUNKED, dtype=torch.bool))
        assert out.requires_grad


@pytest.mark.parametrize("numel", [MIN_CHUNKED + 5, 100])
def test_compute_mask_equals_plain_mask(numel, path):
    x = torch.randn(numel)
    fn = fg.get("rectangular").mask
    assert torch.equal(compute_mask(fn, x, {"a": -0.2, "b": 0.7}), (x >= -0.2) & (x <= 0.7))


def test_user_mask_functions_take_the_pytorch_path():
    x = torch.randn(MIN_CHUNKED + 3)
    assert torch.equal(compute_mask(lambda x, k: x.sin() > k, x, {"k": 0.1}), x.sin() > 0.1)


@pytest.mark.parametrize("a,b", [(-0.5, 0.5), (-0.5, 1.0), (0.0, 0.25)])
def test_rectangular_window_is_closed_for_symmetric_and_other_windows(a, b):
    x = torch.tensor([a - 1e-3, a, (a + b) / 2, b, b + 1e-3, -b, 2 * b])
    got = fg.get("rectangular").mask(x, a=a, b=b)
    assert torch.equal(got, (x >= a) & (x <= b))


def test_unbounded_interval_keeps_every_number_but_nan():
    x = torch.tensor([-math.inf, -1.0, 0.0, math.inf, math.nan])
    assert Interval(lambda: (-math.inf, math.inf))(x).tolist() == [True] * 4 + [False]


def test_interval_is_the_rule_apis_and_keeps_its_old_names():
    """fg.Interval lives in freegrad.interval (rule metadata, no kernels below it); the name
    freegrad.kernels.Interval still works, and the class pickles by reference."""
    import pickle

    assert fg.Interval is Interval is kernels.Interval
    assert Interval.__module__ == "freegrad.interval"
    assert pickle.loads(pickle.dumps(Interval)) is Interval


def test_a_failed_build_warns_once_and_falls_back(monkeypatch, tmp_path):
    monkeypatch.setattr(build, "_native", {})
    monkeypatch.setattr(build, "SOURCE", tmp_path / "missing.cpp")
    with pytest.warns(RuntimeWarning, match="compiled mask kernels unavailable"):
        assert kernels.native() is None
    assert kernels.native_status().startswith("unavailable: ")
    x = torch.randn(100, requires_grad=True)
    with fg.use("rectangular", scope="activations"):
        fg.Activation("Logistic")(x).sum().backward()
    assert torch.equal(x.grad, ((x >= -0.5) & (x <= 0.5)).float())


def test_freegrad_native_0_turns_the_kernels_off(monkeypatch):
    monkeypatch.setattr(build, "_native", {})
    monkeypatch.setenv("FREEGRAD_NATIVE", "0")
    assert kernels.native() is None and kernels.native_status() == "off (FREEGRAD_NATIVE=0)"


def test_channels_last_tensors_keep_their_layout_and_values(path):
    x = torch.randn(8, 6, 12, 12).contiguous(memory_format=torch.channels_last)
    g = torch.randn(8, 6, 12, 12).contiguous(memory_format=torch.channels_last)
    mask = compute_mask(fg.get("rectangular").mask, x, {"a": -0.5, "b": 0.5})
    assert torch.equal(mask, (x >= -0.5) & (x <= 0.5))
    out = apply_mask(g, mask)
    assert torch.equal(out, g * mask)
    if path == "compiled":
        assert mask.stride() == x.stride() and out.stride() == g.stride()
    # A gradient laid out differently from its mask takes the PyTorch path: same values.
    assert torch.equal(apply_mask(g.contiguous(), mask), g * mask)


def test_pip_ninja_is_found_off_path_and_path_is_restored(monkeypatch):
    ninja = pytest.importorskip("ninja")
    monkeypatch.setenv("PATH", "/nonexistent")
    with build._ninja_on_path():
        assert shutil.which("ninja") is not None
        assert os.environ["PATH"].split(os.pathsep)[0] == ninja.BIN_DIR
    assert os.environ["PATH"] == "/nonexistent"


# --- where and when the kernels are built (issue 16, item 4) ---------------------------------

BUILD_NAME = r"freegrad_mask_kernels_[0-9a-f]{12}"


def test_build_name_follows_source_flags_and_nothing_else():
    name = kernels.build_name(b"int x;", ["-O3", "-fopenmp"], ["-fopenmp"])
    assert re.fullmatch(BUILD_NAME, name)
    assert kernels.build_name(b"int x;", ["-O3", "-fopenmp"], ["-fopenmp"]) == name
    assert kernels.build_name(b"int y;", ["-O3", "-fopenmp"], ["-fopenmp"]) != name
    assert kernels.build_name(b"int x;", ["-O2", "-fopenmp"], ["-fopenmp"]) != name
    assert kernels.build_name(b"int x;", ["-O3", "-fopenmp"], []) != name
    # flags are not concatenated ambiguously
    assert kernels.build_name(b"int x;", ["-O3 -fopenmp"], ["-fopenmp"]) != name


def test_build_name_follows_torch_version(monkeypatch):
    name = kernels.build_name(b"int x;", ["-O3"], [])
    monkeypatch.setattr(torch, "__version__", "0.0.1")
    assert kernels.build_name(b"int x;", ["-O3"], []) != name


def test_build_folder_is_named_after_the_build_under_torch_extensions_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    assert kernels.build_dir("freegrad_mask_kernels_0123456789ab") == (
        tmp_path / "freegrad_mask_kernels_0123456789ab")


def test_a_build_at_first_use_says_so_on_stderr(monkeypatch, tmp_path, capfd):
    from torch.utils import cpp_extension

    def failing_load(name, sources, **kwargs):
        assert re.fullmatch(BUILD_NAME, name) and kwargs["build_directory"] == str(tmp_path / name)
        # one path for every checkout
        assert sources == [str(tmp_path / name / kernels.SOURCE.name)]
        raise RuntimeError("no compiler here")

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.delenv("FREEGRAD_NATIVE", raising=False)
    monkeypatch.setattr(build, "_native", {})
    monkeypatch.setattr(cpp_extension, "load", failing_load)
    with pytest.warns(RuntimeWarning, match="no compiler here"):
        assert kernels.ensure_built() == "unavailable: no compiler here"
    err = capfd.readouterr().err
    name = kernels.build_name(kernels.SOURCE.read_bytes(), *kernels.build_flags())
    assert kernels.BUILD_MESSAGE.format(dir=tmp_path / name) in err
    assert len(err.strip().splitlines()) == 1


def test_cli_build_fails_with_the_reason_when_the_compiler_fails(monkeypatch, tmp_path, capsys):
    if kernels.toolchain_missing():
        pytest.skip(kernels.toolchain_missing())
    from freegrad.kernels.__main__ import main

    broken = tmp_path / "mask_kernels.cpp"
    broken.write_text('#error "deliberately broken"\n')
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    monkeypatch.delenv("FREEGRAD_NATIVE", raising=False)
    monkeypatch.setattr(build, "SOURCE", broken)
    monkeypatch.setattr(build, "_native", {})
    assert main(["build"]) == 1
    assert "building the compiled mask kernels failed" in capsys.readouterr().err


def test_cli_build_is_a_no_op_when_freegrad_native_is_0(monkeypatch, capsys):
    from freegrad.kernels.__main__ import main

    monkeypatch.setenv("FREEGRAD_NATIVE", "0")
    assert main(["build"]) == 0
    assert "FREEGRAD_NATIVE=0" in capsys.readouterr().out


def test_cli_builds_once_then_loads_from_its_own_folder(tmp_path):
    """The one real build of the suite (~20-50 s): `python -m freegrad.kernels build` in a
    fresh TORCH_EXTENSIONS_DIR builds and says so; a second process only loads it."""
    import subprocess
    import sys

    if kernels.toolchain_missing():
        pytest.skip(kernels.toolchain_missing())
    env = {k: v for k, v in os.environ.items() if k != "FREEGRAD_NATIVE"}
    env["TORCH_EXTENSIONS_DIR"] = str(tmp_path)
    cmd = [sys.executable, "-W", "error::RuntimeWarning", "-m", "freegrad.kernels", "build"]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    (folder,) = tmp_path.iterdir()
    assert re.fullmatch(BUILD_NAME, folder.name)
    assert first.stderr.strip() == kernels.BUILD_MESSAGE.format(dir=folder)
    assert "compiled mask kernels built in" in first.stdout and str(folder) in first.stdout
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    assert second.stderr == ""
    assert "loaded (already built)" in second.stdout and str(folder) in second.stdout


# --- the fused forward's op codes: one table, kernels/ops.py, for Python and the C++ ----------


def test_the_build_gives_the_cpp_its_op_codes_from_the_python_table():
    cflags, _ = kernels.build_flags()
    assert [f for f in cflags if f.startswith("-DFG_OP_")] == [
        f"-DFG_OP_{name}={code}" for name, code in ops.CODES.items()]
    assert list(ops.CODES.values()) == list(range(len(ops.OPS)))
    enum = re.search(r"enum Op : int64_t \{(.*?)\};", kernels.SOURCE.read_text(), re.S).group(1)
    # every enumerator is its macro: no code is written in the C++
    assert re.findall(r"k\w+ = (\w+)", enum) == [f"FG_OP_{name}" for name in ops.OPS]
    assert {code for code, _ in kernels.FUSED.values()} <= set(ops.CODES.values())


def test_the_op_table_is_part_of_the_build_name(monkeypatch):
    source = kernels.SOURCE.read_bytes()
    name = kernels.build_name(source, *kernels.build_flags())
    monkeypatch.setattr(ops, "CODES", {**ops.CODES, "GELU": len(ops.CODES)})
    assert kernels.build_name(source, *kernels.build_flags()) != name


def test_the_compiled_kernels_report_the_op_codes_of_the_python_table():
    if kernels.native() is None:
        pytest.skip(kernels.native_status())
    assert kernels.native().fused_ops() == ops.CODES
    ops.check(kernels.native())


@pytest.mark.parametrize("table", [{**ops.CODES, "GELU": len(ops.CODES)},
                                   {**ops.CODES, "TANH": ops.CODES["RELU"]}, None],
                         ids=["an op the C++ lacks", "another code", "no table"])
def test_a_built_module_with_other_op_codes_is_refused_with_the_reason(monkeypatch, tmp_path,
                                                                       table):
    """A build folder (marker and library there) whose module lists other ops, or none (built
    before the table was shared): not used, and the reason said, by native() and build_now()."""
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.delenv("FREEGRAD_NATIVE", raising=False)
    name = kernels.build_name(kernels.SOURCE.read_bytes(), *kernels.build_flags())
    (tmp_path / name).mkdir()
    (tmp_path / name / "freegrad-built.json").write_text("{}\n")
    build._library(tmp_path / name, name).write_bytes(b"")
    fake = SimpleNamespace(__file__="fake.so") if table is None else SimpleNamespace(
        __file__="fake.so", fused_ops=lambda: table)
    monkeypatch.setattr(build, "_import", lambda name, library: fake)
    monkeypatch.setattr(build, "_native", {})
    with pytest.warns(RuntimeWarning, match="op codes"):
        assert kernels.native() is None
    assert kernels.native_status().endswith("csrc/mask_kernels.cpp and kernels/ops.py list "
                                            "different ops")
    with pytest.raises(kernels.BuildError, match="fused op codes"):
        kernels.build_now()
    assert kernels.native() is None
