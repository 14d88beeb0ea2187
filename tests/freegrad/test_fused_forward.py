"""The fused forward (F(x) and the rule's mask in one compiled sweep) gives the bits of the
separate computation: y bit for bit PyTorch's own op, the mask and the gradient bit for bit the
PyTorch-ops fallback (FREEGRAD_NATIVE=0), for every dtype and layout, NaN, ±inf and the ends."""

import math
import os
import subprocess
import sys

import freegrad as fg
import pytest
import torch
from freegrad import kernels
from freegrad.forwards import FORWARDS
from freegrad.interval import Interval
from freegrad.kernels import FUSED, build, fused

INTERVAL_RULES = sorted(
    n for n in fg.names() if isinstance(getattr(fg.get(n), "mask", None), Interval)
)
# the rules whose backward is the compiled kernel alone (the jamming rules draw numbers first)
ONE_PASS_BACKWARD = {"rectangular", "straight_through", "d(ReLU)", "d(ReLU6)", "d(HardTanh)",
                     "d(LeakyReLU)"}
# every fused forward with parameters other than its defaults too
FORWARD_PARAMS = [(name, {}) for name in FUSED] + [
    ("HardTanh", {"min_val": -0.25, "max_val": 2.0}), ("LeakyReLU", {"negative_slope": 0.2}),
    ("ELU", {"alpha": 0.5}), ("Softplus", {"beta": 2.0, "threshold": 3.0}),
]
# serial, both grains, odd tails
SIZES = [1, 33, 2049, 32768, 32769, 65536 * 3 + 17, (1 << 20) + 7, (1 << 22) + 96 * 1024 + 5]
DTYPES = [torch.float32, torch.float64]


@pytest.fixture(scope="module")
def module():
    if kernels.native() is None:
        pytest.skip(kernels.native_status())
    return kernels.native()


@pytest.fixture(params=[1, 2], ids=["1 thread", "2 threads"])
def threads(request):
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.view({torch.float32: torch.int32, torch.float64: torch.int64,
                   torch.float16: torch.int16, torch.bfloat16: torch.int16,
                   torch.bool: torch.uint8}[t.dtype])


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and a.stride() == b.stride() and torch.equal(bits(a), bits(b))


def values(n: int, dtype, lo: float = -0.5, hi: float = 0.5) -> torch.Tensor:
    """Noise over the whole range, with NaN, ±inf, ±0, the ends and their neighbours up front."""
    x = torch.randn(n, dtype=dtype, generator=torch.Generator().manual_seed(n)) * 6
    ends = torch.tensor([v for v in (lo, hi) if math.isfinite(v)], dtype=dtype)
    fixed = torch.tensor([math.nan, math.inf, -math.inf, 0.0, -0.0, 20.0, -20.0], dtype=dtype)
    special = torch.cat([fixed, ends, torch.nextafter(ends, ends + 1),
                         torch.nextafter(ends, ends - 1)])
    k = min(n, special.numel())
    x[:k] = special[:k]
    return x


class Spy:
    """The compiled module, counting calls of each kernel."""

    def __init__(self, real):
        self.real, self.calls = real, {}

    def __getattr__(self, name):
        fn = getattr(self.real, name)

        def counted(*args):
            self.calls[name] = self.calls.get(name, 0) + 1
            return fn(*args)

        return counted


@pytest.fixture
def spy(module, monkeypatch):
    spy = Spy(module)
    monkeypatch.setitem(build._native, "module", spy)
    return spy


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("forward,params", FORWARD_PARAMS)
def test_fused_y_is_the_native_op_bit_for_bit_and_the_mask_is_the_interval(module, threads, forward,
                                                                           params, n, dtype):
    spec = FORWARDS[forward]
    op, scalars = FUSED[forward]
    for lo, hi, closed in ((-0.5, 0.5, (True, True)), (0.0, math.inf, (False, True)),
                           (-1.0, 1.0, (False, False))):
        x = values(n, dtype, lo, hi)
        y, mask = module.fused_interval_forward(x, op, *scalars(spec.defaults | params),
                                                lo, hi, *closed)
        assert same_bits(y, spec.bind(params)(x)), (forward, n, dtype, threads)
        assert torch.equal(mask, Interval(lambda lo=lo, hi=hi: (lo, hi), closed)(x))


def test_logistic_in_one_pass_gives_sigmoids_bits_over_the_float32_bit_patterns(module, threads):
    """Every 65,537th float32 bit pattern (65,536 of them: all exponents, NaN payloads of both
    signs, subnormals), then 2^22 normal numbers, each against torch.sigmoid."""
    patterns = (torch.arange(0, 1 << 32, 65537, dtype=torch.int64) - (1 << 31)).to(torch.int32)
    for x in (patterns.view(torch.float32), torch.randn(1 << 22) * 30):
        y, _ = module.fused_interval_forward(x, FUSED["Logistic"][0], 0.0, 0.0, -0.5, 0.5, True,
                                             True)
        assert same_bits(y, torch.sigmoid(x))


CAPABILITY_CHECK = """
import torch
from freegrad import kernels
from freegrad.kernels import FUSED
print(torch.backends.cpu.get_cpu_capability())
for dtype in (torch.float32, torch.float64):
    for n in (7, 33, 100_003, 1_000_037):
        x = torch.randn(n, dtype=dtype) * 8
        x[:3] = torch.tensor([float("nan"), float("inf"), -float("inf")])
        y, _ = kernels.native().fused_interval_forward(x, FUSED["Logistic"][0], 0., 0., -.5, .5,
                                                       True, True)
        bits = {torch.float32: torch.int32, torch.float64: torch.int64}[dtype]
        assert torch.equal(y.view(bits), torch.sigmoid(x).view(bits)), (dtype, n)
"""


@pytest.mark.parametrize("capability", ["default", "avx2", "avx512"])
def test_logistic_in_one_pass_follows_every_cpu_capability_aten_runs(module, capability):
    """ATen picks its vector loop (AVX-512, AVX2, plain C++) at start-up, ATEN_CPU_CAPABILITY
    lowering it; the one-pass Logistic must follow, or its y would differ in the last bit."""
    if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        pytest.skip("not an x86 CPU with AVX2: the one-pass Logistic is the block path here")
    if capability == "avx512" and torch.backends.cpu.get_cpu_capability() != "AVX512":
        pytest.skip("this CPU has no AVX-512")
    env = os.environ | {"ATEN_CPU_CAPABILITY": capability}
    result = subprocess.run([sys.executable, "-c", CAPABILITY_CHECK], env=env, text=True,
                            capture_output=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == capability.upper()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("forward", list(FUSED))
def test_fused_forward_keeps_channels_last_and_2d_layouts(module, threads, forward, dtype):
    spec = FORWARDS[forward]
    op, scalars = FUSED[forward]
    nchw = values(64 * 6 * 28 * 28, dtype).view(64, 6, 28, 28)
    for x in (nchw.contiguous(memory_format=torch.channels_last),
              values(256 * 513, dtype).view(256, 513)):
        y, mask = module.fused_interval_forward(x, op, *scalars(spec.defaults),
                                                -0.5, 0.5, True, True)
        assert same_bits(y, spec.fn(x))
        assert mask.stride() == x.stride() and torch.equal(mask, (x >= -0.5) & (x <= 0.5))


def _run(forward, params, rule, rule_params, x, g, sum_backward=False):
    x = x.detach().requires_grad_(True)
    act = fg.Activation(forward, **params)
    with fg.use(rule, rule_params, scope="activations", seed=0):
        y = act(x)
    if sum_backward:
        y.sum().backward()
        return y.detach(), x.grad
    (grad,) = torch.autograd.grad(y, x, g)
    return y.detach(), grad


def _fallback(monkeypatch):
    monkeypatch.setattr(build, "_native", {"module": None, "status": "off (test)"})


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rule", INTERVAL_RULES)
@pytest.mark.parametrize("forward,params", FORWARD_PARAMS)
def test_activation_with_a_mask_rule_equals_the_fallback_bit_for_bit(spy, monkeypatch, forward,
                                                                    params, rule, dtype):
    n = 65536 * 2 + 5
    x, g = values(n, dtype), torch.randn(n, dtype=dtype)
    g[:3] = torch.tensor([math.nan, -1.0, math.inf])
    ours = _run(forward, params, rule, {}, x, g)
    assert spy.calls.get("fused_interval_forward") == 1  # the fused path was taken
    if rule in ONE_PASS_BACKWARD:
        assert spy.calls.get("masked_grad") == 1
    if rule.endswith("_jam"):  # u drawn in the compiled loop
        assert spy.calls.get("jammed_grad") == 1
    _fallback(monkeypatch)
    theirs = _run(forward, params, rule, {}, x, g)
    assert same_bits(ours[0], theirs[0]) and same_bits(ours[0], FORWARDS[forward].bind(params)(x))
    assert same_bits(ours[1], theirs[1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("rule", ["rectangular", "straight_through", "d(ReLU)", "d(HardTanh)",
                                  "d(LeakyReLU)"])
def test_sum_backward_takes_one_pass_and_equals_the_fallback(spy, monkeypatch, rule, layout, dtype):
    x = values(32 * 6 * 24 * 24, dtype).view(32, 6, 24, 24)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    ours = _run("Logistic", {}, rule, {}, x, None, sum_backward=True)
    assert spy.calls.get("masked_scalar") == 1
    _fallback(monkeypatch)
    theirs = _run("Logistic", {}, rule, {}, x, None, sum_backward=True)
    assert same_bits(ours[0], theirs[0]) and same_bits(ours[1], theirs[1])


def test_masked_scalar_is_value_times_mask_or_a_where(module):
    mask = torch.rand(70_001) > 0.5
    for v in (2.5, -1.0, math.nan, math.inf, -0.0):
        for dtype in DTYPES:
            value = torch.tensor(v, dtype=dtype)
            expanded = value.expand(mask.shape)
            assert same_bits(module.masked_scalar(value, mask), expanded * mask)
            for outside in (0.01, -3.0):
                assert same_bits(module.masked_scalar(value, mask, outside),
                                 torch.where(mask, expanded, expanded * outside))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_other_dtypes_are_not_fused_and_keep_their_values(spy, dtype):
    x = values(5000, torch.float32).to(dtype)
    y, grad = _run("Logistic", {}, "rectangular", {}, x, torch.ones(5000, dtype=dtype))
    assert "fused_interval_forward" not in spy.calls
    assert same_bits(y, torch.sigmoid(x))
    assert torch.equal(grad, ((x >= -0.5) & (x <= 0.5)).to(dtype))


@pytest.mark.parametrize("forward,rule", [("Linear", "rectangular"), ("GELU", "rectangular"),
                                          ("Logistic", "triangular"), ("Logistic", "d(Linear)")])
def test_forwards_and_rules_that_are_not_fused_take_the_plain_path(spy, forward, rule):
    x = values(5000, torch.float32)
    y, _ = _run(forward, {}, rule, {}, x, torch.ones(5000))
    assert "fused_interval_forward" not in spy.calls
    assert same_bits(y, FORWARDS[forward].fn(x))


def test_a_composite_with_a_mask_is_not_fused_and_stays_right(spy):
    x = values(5000, torch.float32)
    rule = fg.compose("rectangular", ("scale", {"s": 2.0}))
    y, grad = _run("Tanh", {}, rule, {}, x, torch.ones(5000))
    assert "fused_interval_forward" not in spy.calls
    assert torch.equal(grad, 2.0 * ((x >= -0.5) & (x <= 0.5)).float())


def test_non_dense_inputs_are_not_fused(spy):
    x = values(4000, torch.float32).view(40, 100).t()[::2]
    y, grad = _run("Logistic", {}, "rectangular", {}, x, torch.ones_like(x))
    assert "fused_interval_forward" not in spy.calls
    assert same_bits(y, torch.sigmoid(x)) and torch.equal(grad, ((x >= -0.5) & (x <= 0.5)).float())


def test_torch_func_and_forward_mode_are_unchanged(module):
    x = values(5000, torch.float32)
    act = fg.Activation("Logistic")
    with fg.use("rectangular", scope="activations"):
        grad = torch.func.grad(lambda t: act(t).sum())(x)
        tangent = fg.functional.jvp(act, x, torch.ones_like(x))
    want = ((x >= -0.5) & (x <= 0.5)).float()
    assert torch.equal(grad, want) and torch.equal(tangent, want)


def test_no_residual_is_left_behind_after_a_fused_forward(module):
    x = values(5000, torch.float32).requires_grad_(True)
    with fg.use("rectangular", scope="activations"):
        fg.Activation("Logistic")(x)
    assert getattr(fused._pending, "value", None) is None


@pytest.mark.parametrize("block", [64, 192, 4096, 65536, 0])
# ops whose tails differ
@pytest.mark.parametrize("forward", ["Logistic", "SiLU", "Softplus", "ELU"])
def test_any_block_size_gives_the_same_bits(module, threads, forward, block):
    spec = FORWARDS[forward]
    op, scalars = FUSED[forward]
    for dtype in DTYPES:
        x = values(300_007, dtype)
        y, _ = module.fused_interval_forward(x, op, *scalars(spec.defaults), -0.5, 0.5, True, True,
                                             block=block)
        assert same_bits(y, spec.fn(x))


def test_a_block_size_that_would_move_the_tails_is_refused(module):
    with pytest.raises(RuntimeError, match="multiple of 64"):
        module.fused_interval_forward(torch.randn(100), 0, 0.0, 0.0, -0.5, 0.5, True, True,
                                      block=100)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_vmap_over_a_mask_rule_activation_takes_the_plain_path(module, layout):
    """Under vmap the forward sees batched tensors, which cannot report a memory format: the
    fused path must not ask them (it raised NYI before the checks were reordered)."""
    x = values(3 * 4 * 6 * 8 * 8, torch.float32).view(3, 4, 6, 8, 8)
    if layout == "channels_last":
        x = torch.stack([t.contiguous(memory_format=torch.channels_last) for t in x])
    act = fg.Activation("Logistic")
    with fg.use("rectangular", scope="activations"):
        y = torch.func.vmap(act)(x)
        grads = torch.func.vmap(torch.func.grad(lambda t: act(t).sum()))(x)
    assert torch.equal(bits(y), bits(torch.sigmoid(x)))  # NaN included
    assert torch.equal(grads, ((x >= -0.5) & (x <= 0.5)).float())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here: the GPU path "
                    "(PyTorch ops, never the compiled CPU kernels) is tested where one exists")
def test_cuda_tensors_take_the_pytorch_path_with_the_same_values():
    x = values(100_000, torch.float32).cuda()
    y, grad = _run("Logistic", {}, "rectangular", {}, x, torch.ones_like(x))
    assert torch.equal(bits(y), bits(torch.sigmoid(x)))
    assert torch.equal(grad, ((x >= -0.5) & (x <= 0.5)).float())
