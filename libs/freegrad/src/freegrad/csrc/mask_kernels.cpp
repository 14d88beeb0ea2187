// Single-pass CPU kernels of mask rules; freegrad/kernels.py builds and calls them.
//
// In PyTorch a window mask 1[lo <= x <= hi] is two comparisons and an `&`, each a
// pass over x with a temporary, and grad * mask converts the mask in a pass of its
// own. Here each is one loop over memory, parallel on ATen's OpenMP pool.
#include <torch/extension.h>
#include <ATen/Parallel.h>

namespace {

// ATen's grain size: tensors below it run on the calling thread.
constexpr int64_t kGrain = 32768;

template <typename T, bool kLoClosed, bool kHiClosed>
void fill_interval(const T* x, bool* mask, int64_t n, T lo, T hi) {
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const T v = x[i];
      const bool above = kLoClosed ? v >= lo : v > lo;
      const bool below = kHiClosed ? v <= hi : v < hi;
      mask[i] = above & below;  // false for NaN, as PyTorch's comparisons
    }
  });
}

template <typename T>
void fill_interval(const T* x, bool* mask, int64_t n, T lo, T hi, bool lo_closed, bool hi_closed) {
  if (lo_closed && hi_closed) fill_interval<T, true, true>(x, mask, n, lo, hi);
  else if (lo_closed) fill_interval<T, true, false>(x, mask, n, lo, hi);
  else if (hi_closed) fill_interval<T, false, true>(x, mask, n, lo, hi);
  else fill_interval<T, false, false>(x, mask, n, lo, hi);
}

// The loops walk memory, not indices: any dense layout works (contiguous, channels_last...)
// as long as every tensor of a call has the same one.
void check_input(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor");
  TORCH_CHECK(t.is_non_overlapping_and_dense(), name, " must be one dense block of memory");
}

}  // namespace

// 1[lo <= x <= hi] (an end is open where its flag is false), a bool tensor laid out like x.
// The bounds are rounded to x's dtype, as PyTorch does when comparing with a Python number.
torch::Tensor interval_mask(const torch::Tensor& x, double lo, double hi, bool lo_closed,
                            bool hi_closed) {
  check_input(x, "x");
  auto mask = torch::empty_like(x, x.options().dtype(torch::kBool));  // x's strides
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "interval_mask", [&] {
    fill_interval<scalar_t>(x.data_ptr<scalar_t>(), mask.data_ptr<bool>(), x.numel(),
                            static_cast<scalar_t>(lo), static_cast<scalar_t>(hi), lo_closed,
                            hi_closed);
  });
  return mask;
}

// grad * mask, value for value what PyTorch's product gives (NaN * 0 is NaN, -g * 0 is -0).
torch::Tensor masked_grad(const torch::Tensor& grad, const torch::Tensor& mask) {
  check_input(grad, "grad");
  check_input(mask, "mask");
  TORCH_CHECK(mask.scalar_type() == torch::kBool, "mask must be bool");
  TORCH_CHECK(mask.sizes() == grad.sizes() && mask.strides() == grad.strides(),
              "mask and grad differ in shape or layout");
  auto out = torch::empty_like(grad);  // grad's strides
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "masked_grad", [&] {
    const scalar_t* g = grad.data_ptr<scalar_t>();
    const bool* m = mask.data_ptr<bool>();
    scalar_t* o = out.data_ptr<scalar_t>();
    at::parallel_for(0, grad.numel(), kGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) o[i] = g[i] * static_cast<scalar_t>(m[i]);
    });
  });
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, module) {
  module.def("interval_mask", &interval_mask, "1[lo <= x <= hi] in one pass");
  module.def("masked_grad", &masked_grad, "grad * mask in one pass");
}
