// Single-pass CPU kernels of mask rules; the freegrad/kernels package builds them (build.py) and
// calls them (dispatch.py, fused.py).
//
// In PyTorch a window mask 1[lo <= x <= hi] is two comparisons and an `&`, each a
// pass over x with a temporary, and grad * mask converts the mask in a pass of its
// own. Here each is one loop over memory, parallel on ATen's OpenMP pool.
//
// fused_interval_forward computes an activation y = F(x) and the mask 1[lo <= x <= hi] of a
// rule in one sweep over memory. y is bit for bit what F's op gives for the whole tensor:
// ATen's vectorised loops treat the last (n mod 2*vector width) elements of each thread's range
// with scalar code, whose rounding can differ (sigmoid's exp, say), so the sweep follows the same
// thread ranges (see thread_ranges) and keeps each range's scalar tail where ATen has it.
// * Logistic, where ATen's sigmoid is vectorised (AVX2, AVX-512): one pass. Our loop computes
//   sigmoid as ATen's kernel does, with the same exp (Sleef's, exported by libtorch_cpu), a small
//   tile at a time, and takes the mask from the tile of x while it is in L1.
// * Every other op: block by block, ATen's own kernel writes y while the block of x is in cache,
//   then the mask is taken from the cached block. Blocks start at multiples of the block size
//   from each range's start, so each has the scalar tail exactly where the whole-tensor call has it.
#include <torch/extension.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <ATen/core/DistributionsHelper.h>

#include <map>
#include <mutex>
#include <optional>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define FG_SLEEF_SIGMOID 1
// Sleef's exp, as ATen's Vectorized<float/double>::exp calls it (AVX-512 and AVX2 builds).
extern "C" {
__m512 Sleef_expf16_u10(__m512);
__m512d Sleef_expd8_u10(__m512d);
__m256 Sleef_expf8_u10(__m256);
__m256d Sleef_expd4_u10(__m256d);
}
#endif

namespace {

// ATen's grain size: tensors below it run on the calling thread.
constexpr int64_t kGrain = 32768;

// Each loop is compiled for AVX-512, AVX2 and the baseline, the best one picked at load time
// (GCC's target_clones; elsewhere the baseline alone). Compares and g * 0/1 are exact, so every
// version gives the same bits.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && __GNUC__ >= 11
#define FG_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FG_CLONES
#endif

template <typename T, bool kLoClosed, bool kHiClosed>
inline void interval_loop(const T* __restrict x, uint8_t* __restrict mask, int64_t n, T lo, T hi) {
  for (int64_t i = 0; i < n; ++i) {
    const T v = x[i];
    const bool above = kLoClosed ? v >= lo : v > lo;
    const bool below = kHiClosed ? v <= hi : v < hi;
    mask[i] = above & below;  // false for NaN, as PyTorch's comparisons
  }
}

template <typename T>
inline void interval_any(const T* x, uint8_t* mask, int64_t n, T lo, T hi, bool lo_closed,
                         bool hi_closed) {
  if (lo_closed && hi_closed) interval_loop<T, true, true>(x, mask, n, lo, hi);
  else if (lo_closed) interval_loop<T, true, false>(x, mask, n, lo, hi);
  else if (hi_closed) interval_loop<T, false, true>(x, mask, n, lo, hi);
  else interval_loop<T, false, false>(x, mask, n, lo, hi);
}

FG_CLONES void interval_f32(const float* x, uint8_t* mask, int64_t n, float lo, float hi,
                            bool lo_closed, bool hi_closed) {
  interval_any<float>(x, mask, n, lo, hi, lo_closed, hi_closed);
}

FG_CLONES void interval_f64(const double* x, uint8_t* mask, int64_t n, double lo, double hi,
                            bool lo_closed, bool hi_closed) {
  interval_any<double>(x, mask, n, lo, hi, lo_closed, hi_closed);
}

// One thread's share: mask[i] = 1[lo <= x[i] <= hi] (an end open where its flag is false).
// bool is written as bytes 0/1, which the compiler vectorises.
inline void fill_interval_serial(const float* x, bool* mask, int64_t n, float lo, float hi,
                                 bool lo_closed, bool hi_closed) {
  interval_f32(x, reinterpret_cast<uint8_t*>(mask), n, lo, hi, lo_closed, hi_closed);
}

inline void fill_interval_serial(const double* x, bool* mask, int64_t n, double lo, double hi,
                                 bool lo_closed, bool hi_closed) {
  interval_f64(x, reinterpret_cast<uint8_t*>(mask), n, lo, hi, lo_closed, hi_closed);
}

// v * mask, or with outside != 0 where(mask, v, v * outside): v and v * outside are computed
// once, so each element is a pick of one of two values.
FG_CLONES void scaled_mask_f32(float inside, float outside, const uint8_t* __restrict m,
                               float* __restrict out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = m[i] ? inside : outside;
}

FG_CLONES void scaled_mask_f64(double inside, double outside, const uint8_t* __restrict m,
                               double* __restrict out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = m[i] ? inside : outside;
}

inline void scaled_mask_serial(float inside, float outside, const bool* m, float* out, int64_t n) {
  scaled_mask_f32(inside, outside, reinterpret_cast<const uint8_t*>(m), out, n);
}

inline void scaled_mask_serial(double inside, double outside, const bool* m, double* out,
                               int64_t n) {
  scaled_mask_f64(inside, outside, reinterpret_cast<const uint8_t*>(m), out, n);
}

template <typename T>
void fill_interval(const T* x, bool* mask, int64_t n, T lo, T hi, bool lo_closed, bool hi_closed) {
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    fill_interval_serial(x + begin, mask + begin, end - begin, lo, hi, lo_closed, hi_closed);
  });
}

// grad * mask, the mask read as bytes 0/1 (vectorised; a bool load is not).
FG_CLONES void masked_f32(const float* __restrict g, const uint8_t* __restrict m,
                          float* __restrict out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = g[i] * static_cast<float>(m[i]);
}

FG_CLONES void masked_f64(const double* __restrict g, const uint8_t* __restrict m,
                          double* __restrict out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = g[i] * static_cast<double>(m[i]);
}

// where(mask, grad, grad * outside): inside the mask g as it is, outside g scaled.
FG_CLONES void where_scaled_f32(const float* __restrict g, const uint8_t* __restrict m,
                                float outside, float* __restrict out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = m[i] ? g[i] : g[i] * outside;
}

FG_CLONES void where_scaled_f64(const double* __restrict g, const uint8_t* __restrict m,
                                double outside, double* __restrict out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = m[i] ? g[i] : g[i] * outside;
}

// outside 0: grad * mask, whose bits (NaN * 0, -g * 0) differ from a where's.
inline void masked_serial(const float* g, const bool* m, float outside, float* out, int64_t n) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(m);
  if (outside == 0) masked_f32(g, bytes, out, n);
  else where_scaled_f32(g, bytes, outside, out, n);
}

inline void masked_serial(const double* g, const bool* m, double outside, double* out, int64_t n) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(m);
  if (outside == 0) masked_f64(g, bytes, out, n);
  else where_scaled_f64(g, bytes, outside, out, n);
}

// g * u, times the mask where there is one (the product first, as PyTorch's (g * u) * mask).
template <typename T>
inline void jam_serial(const T* __restrict g, const T* __restrict u, const bool* m, T* __restrict out,
                       int64_t n) {
  if (m == nullptr) {
    for (int64_t i = 0; i < n; ++i) out[i] = g[i] * u[i];
    return;
  }
  const auto* bytes = reinterpret_cast<const uint8_t*>(m);
  for (int64_t i = 0; i < n; ++i) out[i] = (g[i] * u[i]) * static_cast<T>(bytes[i]);
}

// The loops walk memory, not indices: any dense layout works (contiguous, channels_last...)
// as long as every tensor of a call has the same one.
void check_input(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor");
  TORCH_CHECK(t.is_non_overlapping_and_dense(), name, " must be one dense block of memory");
}

// Elements per block of the fused forward: a multiple of every vector loop's step (2 x 64 bytes
// at most, i.e. 32 floats). Each block costs one ATen call (~2-5 us); a thread's range is cut in
// about 8 blocks of 64-256 Ki elements, so the block of x is still in L2/L3 for the mask and the
// calls stay a small share of the work.
constexpr int64_t kMinBlock = 65536, kMaxBlock = 131072, kBlocksPerRange = 8, kStep = 64;

int64_t block_size(int64_t range) {
  const int64_t even = (range / kBlocksPerRange + kStep - 1) / kStep * kStep;
  return std::min(kMaxBlock, std::max(kMinBlock, even));
}

int64_t divup(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The ranges at::parallel_for hands to its threads for TensorIterator::for_each over n elements
// with ATen's default grain size: the whole range when it runs serially, else num_threads equal
// chunks (the last one shorter).
std::vector<std::pair<int64_t, int64_t>> thread_ranges(int64_t n) {
  const int64_t grain = at::internal::GRAIN_SIZE;
  const int64_t threads = at::get_num_threads();
  std::vector<std::pair<int64_t, int64_t>> ranges;
  if (n <= grain || threads <= 1 || at::in_parallel_region()) {
    ranges.emplace_back(0, n);
    return ranges;
  }
  const int64_t used = std::min(threads, divup(n, grain));
  const int64_t chunk = divup(n, used);
  for (int64_t begin = 0; begin < n; begin += chunk) ranges.emplace_back(begin, std::min(n, begin + chunk));
  return ranges;
}

// --- Logistic in one pass ---------------------------------------------------------------------

// ATen's scalar sigmoid (its loops' tails, and the whole loop without vector units).
template <typename T>
inline void sigmoid_scalar(const T* x, T* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<T>(1) / (static_cast<T>(1) + std::exp(-x[i]));
}

#ifdef FG_SLEEF_SIGMOID
// ATen's vectorised sigmoid, step for step: y = 1 / (exp(-x) + 1), -x a flip of the sign bit (of a
// NaN's too). V is a GCC/Clang vector type (__m512 is float x 16), whose operators are the plain
// IEEE operations. n is a multiple of V's width.
template <typename V, typename T, V (*Exp)(V)>
__attribute__((always_inline)) inline void sigmoid_vectors(const T* x, T* y, int64_t n) {
  constexpr int64_t width = sizeof(V) / sizeof(T);
  for (int64_t i = 0; i < n; i += width) {
    V a;
    std::memcpy(&a, x + i, sizeof(V));
    a = Exp(-a) + static_cast<T>(1);
    a = static_cast<T>(1) / a;
    std::memcpy(y + i, &a, sizeof(V));
  }
}

__attribute__((target("avx512f"))) void sigmoid_avx512(const float* x, float* y, int64_t n) {
  sigmoid_vectors<__m512, float, Sleef_expf16_u10>(x, y, n);
}
__attribute__((target("avx512f"))) void sigmoid_avx512(const double* x, double* y, int64_t n) {
  sigmoid_vectors<__m512d, double, Sleef_expd8_u10>(x, y, n);
}
__attribute__((target("avx2,fma"))) void sigmoid_avx2(const float* x, float* y, int64_t n) {
  sigmoid_vectors<__m256, float, Sleef_expf8_u10>(x, y, n);
}
__attribute__((target("avx2,fma"))) void sigmoid_avx2(const double* x, double* y, int64_t n) {
  sigmoid_vectors<__m256d, double, Sleef_expd4_u10>(x, y, n);
}
#endif

// Which loop ATen's sigmoid runs here (its CPU capability): AVX-512 or AVX2 vectors, scalar code
// only (DEFAULT), or one we have no copy of (not x86, say), where the block path calls ATen.
enum class SigmoidPath { kBlocks, kScalar, kAvx2, kAvx512 };

SigmoidPath sigmoid_path() {
#ifdef FG_SLEEF_SIGMOID
  static const SigmoidPath path = [] {
    const std::string capability = at::get_cpu_capability();
    if (capability == "AVX512") return SigmoidPath::kAvx512;
    if (capability == "AVX2") return SigmoidPath::kAvx2;
    if (capability == "DEFAULT") return SigmoidPath::kScalar;
    return SigmoidPath::kBlocks;
  }();
  return path;
#else
  return SigmoidPath::kBlocks;
#endif
}

// Elements of x per tile: its tile (8 KiB of float32) stays in L1 between y and the mask.
constexpr int64_t kTile = 2048;

// One thread's range of sigmoid_interval: ATen's loop does 2 vectors a step, then the scalar tail.
template <typename T>
void sigmoid_interval_range(const T* x, T* y, bool* mask, int64_t n, int64_t tile, T lo, T hi,
                            bool lo_closed, bool hi_closed) {
  const auto path = sigmoid_path();
  const int64_t width = path == SigmoidPath::kAvx512 ? 64 / sizeof(T)
                        : path == SigmoidPath::kAvx2 ? 32 / sizeof(T) : 0;
  const int64_t body = width ? n / (2 * width) * (2 * width) : 0;
  for (int64_t start = 0; start < body; start += tile) {
    const int64_t len = std::min(tile, body - start);
#ifdef FG_SLEEF_SIGMOID
    if (path == SigmoidPath::kAvx512) sigmoid_avx512(x + start, y + start, len);
    else sigmoid_avx2(x + start, y + start, len);
#endif
    fill_interval_serial(x + start, mask + start, len, lo, hi, lo_closed, hi_closed);
  }
  sigmoid_scalar(x + body, y + body, n - body);
  fill_interval_serial(x + body, mask + body, n - body, lo, hi, lo_closed, hi_closed);
}

// The ATen ops of the forwards with a native op (forwards.py; kernels/fused.py maps them). Their
// codes come from the build, -DFG_OP_<NAME>=<code>, made from the one table, kernels/ops.py;
// fused_ops() reports them back, and the loader refuses a module whose table is not that one.
#ifndef FG_OP_SIGMOID
#error "the op codes come from freegrad/kernels/ops.py: build through freegrad.kernels"
#endif
enum Op : int64_t {
  kSigmoid = FG_OP_SIGMOID, kTanh = FG_OP_TANH, kRelu = FG_OP_RELU, kSilu = FG_OP_SILU,
  kHardtanh = FG_OP_HARDTANH, kLeakyRelu = FG_OP_LEAKY_RELU, kElu = FG_OP_ELU,
  kSoftplus = FG_OP_SOFTPLUS, kHeaviside = FG_OP_HEAVISIDE, kSign = FG_OP_SIGN
};

// Every op apply_op runs, by its name in kernels/ops.py, with its code.
std::map<std::string, int64_t> fused_ops() {
  return {{"SIGMOID", kSigmoid}, {"TANH", kTanh}, {"RELU", kRelu}, {"SILU", kSilu},
          {"HARDTANH", kHardtanh}, {"LEAKY_RELU", kLeakyRelu}, {"ELU", kElu},
          {"SOFTPLUS", kSoftplus}, {"HEAVISIDE", kHeaviside}, {"SIGN", kSign}};
}

void apply_op(int64_t op, at::Tensor& y, const at::Tensor& x, double p0, double p1,
              const at::Tensor& zero) {
  switch (op) {
    case kSigmoid: at::sigmoid_out(y, x); break;
    case kTanh: at::tanh_out(y, x); break;
    case kRelu: at::clamp_min_out(y, x, 0); break;  // torch.relu is clamp_min(x, 0)
    case kSilu: at::silu_out(y, x); break;
    case kHardtanh: at::hardtanh_out(y, x, p0, p1); break;  // also ReLU6: (0, 6)
    case kLeakyRelu: at::leaky_relu_out(y, x, p0); break;
    case kElu: at::elu_out(y, x, p0, 1, 1); break;
    case kSoftplus: at::softplus_out(y, x, p0, p1); break;
    case kHeaviside: at::heaviside_out(y, x, zero); break;
    case kSign: at::sign_out(y, x); break;
    default: TORCH_CHECK(false, "unknown fused op ", op);
  }
}

}  // namespace

// (F(x), 1[lo <= x <= hi]) in one sweep; y and the mask are laid out like x. block: elements
// per ATen call, 0 for block_size's choice (any multiple of kStep gives the same bits).
std::vector<torch::Tensor> fused_interval_forward(const torch::Tensor& input, int64_t op, double p0,
                                                  double p1, double lo, double hi, bool lo_closed,
                                                  bool hi_closed, int64_t block) {
  check_input(input, "x");
  TORCH_CHECK(block >= 0 && block % kStep == 0, "block must be 0 (automatic) or a multiple of ", kStep);
  const auto x = input.detach();
  auto y = torch::empty_like(x);
  auto mask = torch::empty_like(x, x.options().dtype(torch::kBool));
  const int64_t n = x.numel();
  if (n == 0) return {y, mask};
  // One-dimensional views in memory order (any dense layout; y and mask share x's strides).
  const auto flat_x = x.as_strided({n}, {1});
  auto flat_y = y.as_strided({n}, {1});
  const auto zero = torch::zeros({}, x.options());
  const auto ranges = thread_ranges(n);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_interval_forward", [&] {
    const scalar_t* xp = x.data_ptr<scalar_t>();
    bool* mp = mask.data_ptr<bool>();
    const auto lo_t = static_cast<scalar_t>(lo), hi_t = static_cast<scalar_t>(hi);
    at::parallel_for(0, static_cast<int64_t>(ranges.size()), 1, [&](int64_t first, int64_t last) {
      at::AutoDispatchBelowADInplaceOrView below_autograd;  // plain tensors, no graph
      for (int64_t r = first; r < last; ++r) {
        const auto [begin, end] = ranges[r];
        if (op == kSigmoid && sigmoid_path() != SigmoidPath::kBlocks) {
          sigmoid_interval_range(xp + begin, y.data_ptr<scalar_t>() + begin, mp + begin,
                                 end - begin, block > 0 ? block : kTile, lo_t, hi_t, lo_closed,
                                 hi_closed);
          continue;
        }
        const int64_t step = block > 0 ? block : block_size(end - begin);
        for (int64_t start = begin; start < end; start += step) {
          const int64_t stop = std::min(end, start + step);
          auto y_block = flat_y.slice(0, start, stop);
          apply_op(op, y_block, flat_x.slice(0, start, stop), p0, p1, zero);
          fill_interval_serial(xp + start, mp + start, stop - start, lo_t, hi_t,
                                         lo_closed, hi_closed);
        }
      }
    });
  });
  return {y, mask};
}

// 1[lo <= x <= hi] (an end is open where its flag is false), a bool tensor laid out like x.
// The bounds are rounded to x's dtype, as PyTorch does when comparing with a Python number.
torch::Tensor interval_mask(const torch::Tensor& x, double lo, double hi, bool lo_closed,
                            bool hi_closed) {
  check_input(x, "x");
  auto mask = torch::empty_like(x, x.options().dtype(torch::kBool));  // x's strides
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "interval_mask", [&] {
    fill_interval(x.data_ptr<scalar_t>(), mask.data_ptr<bool>(), x.numel(),
                            static_cast<scalar_t>(lo), static_cast<scalar_t>(hi), lo_closed,
                            hi_closed);
  });
  return mask;
}

// grad * mask, value for value what PyTorch's product gives (NaN * 0 is NaN, -g * 0 is -0); for
// outside != 0, torch.where(mask, grad, grad * outside), outside rounded to grad's dtype as
// PyTorch does with a Python number.
torch::Tensor masked_grad(const torch::Tensor& grad, const torch::Tensor& mask, double outside) {
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
    const auto scale = static_cast<scalar_t>(outside);
    at::parallel_for(0, grad.numel(), kGrain, [&](int64_t begin, int64_t end) {
      masked_serial(g + begin, m + begin, scale, o + begin, end - begin);
    });
  });
  return out;
}

// value * mask for one number broadcast over the mask (the gradient of y.sum(), say): what
// PyTorch's (value expanded) * mask gives, laid out like the mask; for outside != 0,
// torch.where(mask, value, value * outside) expanded.
torch::Tensor masked_scalar(const torch::Tensor& value, const torch::Tensor& mask, double outside) {
  check_input(mask, "mask");
  TORCH_CHECK(mask.scalar_type() == torch::kBool, "mask must be bool");
  TORCH_CHECK(value.numel() == 1 && value.device().is_cpu(), "value must be one CPU number");
  auto out = torch::empty_like(mask, mask.options().dtype(value.scalar_type()));
  AT_DISPATCH_FLOATING_TYPES(value.scalar_type(), "masked_scalar", [&] {
    const scalar_t v = value.item<scalar_t>();
    // v * 1 and v * 0 as the product gives them (v * 0 is NaN for an infinite v, -0 for a negative)
    const scalar_t inside = outside == 0 ? v * static_cast<scalar_t>(1) : v;
    const scalar_t out_value = v * static_cast<scalar_t>(outside);
    const bool* m = mask.data_ptr<bool>();
    scalar_t* o = out.data_ptr<scalar_t>();
    at::parallel_for(0, mask.numel(), kGrain, [&](int64_t begin, int64_t end) {
      scaled_mask_serial(inside, out_value, m + begin, o + begin, end - begin);
    });
  });
  return out;
}

// grad * u (* mask), u ~ U[0, 1) drawn from `generator` (torch's default one if none) exactly as
// torch.rand(grad.shape, generator=generator) draws it: one number per element, in grad's logical
// (row-major) order, with ATen's own distribution. The draws are serial, as torch.rand's are; what
// this saves is u's tensor and the two passes over it (the product, the mask).
torch::Tensor jammed_grad(const torch::Tensor& grad, const std::optional<torch::Tensor>& mask,
                          std::optional<at::Generator> generator) {
  check_input(grad, "grad");
  if (mask) {
    check_input(*mask, "mask");
    TORCH_CHECK(mask->scalar_type() == torch::kBool, "mask must be bool");
    TORCH_CHECK(mask->sizes() == grad.sizes() && mask->strides() == grad.strides(),
                "mask and grad differ in shape or layout");
  }
  auto* gen = at::get_generator_or_default<at::CPUGeneratorImpl>(
      generator, at::detail::getDefaultCPUGenerator());
  auto out = torch::empty_like(grad);  // grad's strides
  const int64_t n = grad.numel(), dims = grad.dim();
  const auto sizes = grad.sizes();
  const auto strides = grad.strides();
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "jammed_grad", [&] {
    const scalar_t* g = grad.data_ptr<scalar_t>();
    const bool* m = mask ? mask->data_ptr<bool>() : nullptr;
    scalar_t* o = out.data_ptr<scalar_t>();
    const at::uniform_real_distribution<scalar_t> uniform(0, 1);
    // The innermost logical dims that are one evenly strided run in memory (all of them when
    // contiguous; H and W, stride C, in channels_last): u is drawn a tile of a run at a time.
    int64_t inner = std::max<int64_t>(dims - 1, 0);  // a 0-d tensor is one run of 1
    while (inner > 0 && strides[inner - 1] == strides[inner] * sizes[inner]) --inner;
    const int64_t step = dims ? strides[dims - 1] : 1;
    int64_t run = 1;
    for (int64_t d = inner; d < dims; ++d) run *= sizes[d];
    std::vector<int64_t> index(inner, 0);  // the outer dims' logical index
    int64_t base = 0;                      // and the run's place in memory
    scalar_t u[kTile];
    std::lock_guard<std::mutex> lock(gen->mutex_);
    for (int64_t first = 0; first < n; first += run) {
      for (int64_t start = 0; start < run; start += kTile) {
        const int64_t len = std::min(kTile, run - start);
        for (int64_t i = 0; i < len; ++i) u[i] = static_cast<scalar_t>(uniform(gen));
        const int64_t at = base + start * step;
        if (step == 1) {
          jam_serial(g + at, u, m ? m + at : nullptr, o + at, len);
          continue;
        }
        for (int64_t i = 0; i < len; ++i) {
          const int64_t k = at + i * step;
          jam_serial(g + k, u + i, m ? m + k : nullptr, o + k, 1);
        }
      }
      for (int64_t d = inner - 1; d >= 0; --d) {  // the next run, like an odometer
        base += strides[d];
        if (++index[d] < sizes[d]) break;
        base -= strides[d] * sizes[d];
        index[d] = 0;
      }
    }
  });
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, module) {
  module.def("interval_mask", &interval_mask, "1[lo <= x <= hi] in one pass");
  module.def("masked_grad", &masked_grad, "grad * mask (outside != 0: where(mask, grad, grad * outside)) in one pass",
             py::arg("grad"), py::arg("mask"), py::arg("outside") = 0.0);
  module.def("masked_scalar", &masked_scalar,
             "value * mask (outside != 0: where(mask, value, value * outside)) in one pass, value one number",
             py::arg("value"), py::arg("mask"), py::arg("outside") = 0.0);
  module.def("jammed_grad", &jammed_grad,
             "grad * u (* mask), u drawn as torch.rand(grad.shape, generator=generator) draws it",
             py::arg("grad"), py::arg("mask") = std::nullopt, py::arg("generator") = std::nullopt);
  module.def("fused_ops", &fused_ops, "{op name: code} of fused_interval_forward, as built");
  module.def("fused_interval_forward", &fused_interval_forward,
             "(F(x), 1[lo <= x <= hi]) in one sweep, y bit for bit F's ATen op",
             py::arg("x"), py::arg("op"), py::arg("p0"), py::arg("p1"), py::arg("lo"), py::arg("hi"),
             py::arg("lo_closed"), py::arg("hi_closed"), py::arg("block") = 0);
}
