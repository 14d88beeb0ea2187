"""The chunked mask kernel equals the plain product on every path."""

import pytest
import torch

import freegrad as fg
from freegrad.kernels import CHUNK, MIN_CHUNKED, apply_mask


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("numel", [MIN_CHUNKED, MIN_CHUNKED + CHUNK // 3, 10])
def test_apply_mask_equals_plain_product(dtype, numel):
    g = torch.randn(numel).to(dtype)
    m = torch.rand(numel) > 0.4
    assert torch.equal(apply_mask(g, m), g * m)


def test_large_rectangular_backward_matches_formula():
    x = torch.randn(1024, 1025, requires_grad=True)  # above MIN_CHUNKED, not a multiple of CHUNK
    g = torch.randn(1024, 1025)
    with fg.use("rectangular", scope="activations"):
        fg.Activation("ReLU")(x).backward(g)
    assert torch.equal(x.grad, g * ((x >= -0.5) & (x <= 0.5)))


def test_non_contiguous_and_grad_mode_take_the_plain_path():
    g = torch.randn(2048, 1024).t()
    m = torch.rand(1024, 2048) > 0.5
    assert torch.equal(apply_mask(g, m), g * m)
    with torch.enable_grad():
        gg = torch.randn(MIN_CHUNKED, requires_grad=True)
        out = apply_mask(gg, torch.ones(MIN_CHUNKED, dtype=torch.bool))
        assert out.requires_grad


@pytest.mark.parametrize("numel", [MIN_CHUNKED + 5, 100])
def test_compute_mask_equals_plain_mask(numel):
    from freegrad.kernels import compute_mask

    x = torch.randn(numel)
    fn = fg.get("rectangular").mask
    assert torch.equal(compute_mask(fn, x, {"a": -0.2, "b": 0.7}), (x >= -0.2) & (x <= 0.7))


@pytest.mark.parametrize("a,b", [(-0.5, 0.5), (-0.5, 1.0), (0.0, 0.25)])
def test_rectangular_window_is_closed_for_symmetric_and_other_windows(a, b):
    x = torch.tensor([a - 1e-3, a, (a + b) / 2, b, b + 1e-3, -b, 2 * b])
    got = fg.get("rectangular").mask(x, a=a, b=b)
    assert torch.equal(got, (x >= a) & (x <= b))
