// One LeNet-5 training step (forward, hand-derived backward, SGD update) for one member of
// experiments/tasks/wide_lenet.py, and its forward alone (evaluation). Built and loaded by that
// module with torch.utils.cpp_extension; nothing else calls it.
//
// Why: at batch 64-256 PyTorch's step is a few dozen small ops, each a pass over memory with
// its own temporaries and dispatch, and oneDNN's convolutions with 1, 6 and 16 channels run at
// a fifth of the core's GEMM speed. Here, per step:
// * the batch goes through the whole network 64 images at a time (kChunk; the weight
//   gradients summed over chunks, the update after the last), and through the convolutions a
//   tile of 8 images at a time, so what one layer hands the next stays in L1/L2;
// * conv1 (1 input channel) is a direct convolution in AVX-512 registers, fused with its
//   activation, the residual the rule needs and the 2x2 pooling; its weight gradient too;
// * conv2 and the fc layers are MKL sgemm calls on the tile (the bias a column of the weight
//   matrix against a row of ones in the input), with im2col / col2im as vector loops;
// * the backward is derived by hand: pooling, activation rule (freegrad's, as numbers: kinds
//   below), conv and fc gradients, then torch.optim.SGD's update;
// * the stochastic rules' random numbers are drawn here from the member's torch.Generator in
//   the order, shapes and stream its solo run draws them (fc2's activation (B, 84), fc1's
//   (B, 120), conv2's (B, 16, 10, 10), conv1's (B, 6, 28, 28)): torch.rand's exactly,
//   torch.randn's uniforms exactly and their Box-Muller transform to a few ulp.
//
// Layouts (row-major), for a tile of T images:
//   conv1 output  (6, T*784)   channel, image, y, x (only as the residual)
//   pooled        (6, T*196)
//   conv2 im2col  (151, T*100) row ci*25+kh*5+kw, rows T*100+16 apart; row 150 ones
//   conv2 output  (16, T*100)
//   fc inputs     (401, C), (121, C), (85, C)  feature, image (last row ones), C <= 64
//   logits        (C, n_classes)
// Parameters: one float vector, [conv1 (6,26) | conv2 (16,151) | fc1 (120,401) | fc2 (84,121)
// | fc3 (n,85)], each (out, in + 1) with the bias last (wide_lenet.pack / state_dict convert).
#include <torch/extension.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <ctime>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define WL_SLEEF 1
extern "C" {
__m512 Sleef_expf16_u10(__m512);
__m512 Sleef_tanhf16_u10(__m512);
}
#endif

// MKL's (or the BLAS torch links) Fortran sgemm, exported by libtorch_cpu.
extern "C" void sgemm_(const char* transa, const char* transb, const int* m, const int* n,
                       const int* k, const float* alpha, const float* a, const int* lda,
                       const float* b, const int* ldb, const float* beta, float* c,
                       const int* ldc);

namespace {

// --- optional phase timing: profile(true) turns it on, profile(false) returns the seconds per
// phase (thread CPU time) and resets them; a development aid, one branch per mark when off ----
bool g_prof = false;
double g_acc[32] = {0};
double g_last = 0;
inline void mark(int i) {  // thread CPU time: the other processes' share of the core left out
  if (!g_prof) return;
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  const double now = ts.tv_sec + 1e-9 * ts.tv_nsec;
  if (i >= 0) g_acc[i] += now - g_last;
  g_last = now;
}

constexpr int64_t kP1 = 784, kC1 = 6, kK1 = 26;    // conv1: 28x28 outputs, 6 channels, 25 + 1
constexpr int64_t kQ1 = 196;                       // pooled 14x14
constexpr int64_t kP2 = 100, kC2 = 16, kK2 = 151;  // conv2: 10x10 outputs, 16 channels, 150 + 1
constexpr int64_t kQ2 = 25;                        // pooled 5x5
constexpr int64_t kChunk = 64;                     // images through the whole network at once
constexpr int64_t kF1 = 120, kF2 = 84, kIn1 = 401, kIn2 = 121, kIn3 = 85;
constexpr int64_t kO1 = 0, kO2 = kO1 + kC1 * kK1, kO3 = kO2 + kC2 * kK2, kO4 = kO3 + kF1 * kIn1,
                  kO5 = kO4 + kF2 * kIn2;

// C (M x N, row-major) = alpha op(A) op(B) + beta C, as the column-major sgemm of the transposes.
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  const char tA = ta ? 'T' : 'N', tB = tb ? 'T' : 'N';
  const int M = static_cast<int>(m), N = static_cast<int>(n), K = static_cast<int>(k);
  const int LDA = static_cast<int>(lda), LDB = static_cast<int>(ldb), LDC = static_cast<int>(ldc);
  const float one = 1.0f;
  sgemm_(&tB, &tA, &N, &M, &K, &one, b, &LDB, a, &LDA, &beta, c, &LDC);
}

// --- activations: ATen's arithmetic (sigmoid 1 / (exp(-x) + 1) with Sleef's exp on 2 vectors
// a step and std::exp on the tail; tanh Sleef's; relu max(0, x) keeping NaN and -0) ---------

enum Forward : int64_t { kLinear = 0, kRelu = 1, kLogistic = 2, kTanh = 3 };

bool avx512() {
  static const bool yes = at::get_cpu_capability() == "AVX512";
  return yes;
}

#ifdef WL_SLEEF
__attribute__((target("avx512f"))) void sigmoid_avx512(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    __m512 a = _mm512_loadu_ps(x + i);
    a = Sleef_expf16_u10(-a) + 1.0f;
    a = 1.0f / a;
    _mm512_storeu_ps(y + i, a);
  }
}
__attribute__((target("avx512f"))) void tanh_avx512(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) _mm512_storeu_ps(y + i, Sleef_tanhf16_u10(_mm512_loadu_ps(x + i)));
}
#endif

void activate(int64_t fwd, const float* z, float* y, int64_t n) {
  switch (fwd) {
    case kLinear:
      if (y != z) std::memcpy(y, z, n * sizeof(float));
      return;
    case kRelu:
      for (int64_t i = 0; i < n; ++i) y[i] = z[i] < 0.0f ? 0.0f : z[i];
      return;
    case kLogistic: {
      int64_t body = 0;
#ifdef WL_SLEEF
      if (avx512()) {
        body = n / 32 * 32;
        sigmoid_avx512(z, y, body);
      }
#endif
      for (int64_t i = body; i < n; ++i) y[i] = 1.0f / (1.0f + std::exp(-z[i]));
      return;
    }
    case kTanh: {
      int64_t body = 0;
#ifdef WL_SLEEF
      if (avx512()) {
        body = n / 32 * 32;
        tanh_avx512(z, y, body);
      }
#endif
      for (int64_t i = body; i < n; ++i) y[i] = std::tanh(z[i]);
      return;
    }
  }
  TORCH_CHECK(false, "wide_lenet: unknown forward code ", fwd);
}

// --- backward rules --------------------------------------------------------------------------

// spec (float64): [kind, a, b, lo, hi, lo_closed, hi_closed, mask_source, mode]
enum Kind : int64_t {
  kPass = 0,       // g
  kReluTrue,       // threshold_backward(g, relu(x), 0): 0 where x <= 0
  kSigmoidTrue,    // sigmoid_backward(g, y): g (1 - y) y
  kTanhTrue,       // tanh_backward(g, y): g (1 - y y)
  kMask,           // g * 1[lo (<=) x (<=) hi]; a != 0: where(mask, g, g * a)
  kTriangular,     // g * max(0, 1 - |x| / a)
  kDLogistic,      // s = sigmoid(x): g s (1 - s)
  kDTanh,          // t = tanh(x): g (1 - t t)
  kNoiseAdd,       // g + a eps
  kNoiseMul,       // g (1 + a eps)
  kJam,            // (g u or sign(g) u) * mask (mask of x or of g, or none)
  kZero,           // 0
  kScale,          // g a
};
// What the backward keeps of a conv activation: nothing, its input x, its output y, or one
// byte per element, the rule's mask of x (4x less memory to write and read back)
enum Residual : int64_t { kNone = 0, kInput = 1, kOutput = 2, kByte = 3 };

struct Rule {
  int64_t kind = kPass;
  float a = 0, b = 0, lo = 0, hi = 0;
  bool lo_closed = true, hi_closed = true;
  int64_t mask_source = 0;  // kJam: 0 none, 1 the input x, 2 the gradient g
  int64_t mode = 0;         // kJam: 0 scale (g u), 1 sign (sign(g) u)
  bool draws() const { return kind == kNoiseAdd || kind == kNoiseMul || kind == kJam; }
  int64_t residual() const {
    switch (kind) {
      case kSigmoidTrue: case kTanhTrue: return kOutput;
      case kReluTrue: case kMask: return kByte;
      case kTriangular: case kDLogistic: case kDTanh: return kInput;
      case kJam: return mask_source == 1 ? kByte : kNone;
      default: return kNone;
    }
  }
};

Rule parse_rule(const torch::Tensor& spec) {
  TORCH_CHECK(spec.scalar_type() == torch::kFloat64 && spec.numel() == 9 && spec.is_contiguous(),
              "wide_lenet: a rule is 9 float64 numbers");
  const double* s = spec.data_ptr<double>();
  Rule r;
  r.kind = static_cast<int64_t>(s[0]);
  r.a = static_cast<float>(s[1]);
  r.b = static_cast<float>(s[2]);
  r.lo = static_cast<float>(s[3]);
  r.hi = static_cast<float>(s[4]);
  r.lo_closed = s[5] != 0;
  r.hi_closed = s[6] != 0;
  r.mask_source = static_cast<int64_t>(s[7]);
  r.mode = static_cast<int64_t>(s[8]);
  TORCH_CHECK(r.kind >= kPass && r.kind <= kScale, "wide_lenet: unknown rule kind ", r.kind);
  return r;
}

inline bool inside(const Rule& r, float v) {  // false for NaN, as the comparisons give
  const bool above = r.lo_closed ? v >= r.lo : v > r.lo;
  const bool below = r.hi_closed ? v <= r.hi : v < r.hi;
  return above & below;
}

template <bool LoClosed, bool HiClosed>
inline bool in_window(float v, float lo, float hi) {
  const bool above = LoClosed ? v >= lo : v > lo;
  const bool below = HiClosed ? v <= hi : v < hi;
  return above & below;
}

// f(lo_closed, hi_closed) with both as compile-time constants, so the loops vectorise
template <typename Fn>
void with_window(const Rule& r, Fn&& f) {
  using T = std::true_type;
  using F = std::false_type;
  if (r.lo_closed && r.hi_closed) f(T{}, T{});
  else if (r.lo_closed) f(T{}, F{});
  else if (r.hi_closed) f(F{}, T{});
  else f(F{}, F{});
}

inline float sign_of(float v) {  // torch.sign's vectorised (0 < v) - (v < 0): 0 for NaN and -0
  return static_cast<float>(v > 0.0f) - static_cast<float>(v < 0.0f);
}

// The byte residual of x for kByte rules: ReLU's true derivative keeps 1[!(x <= 0)] (zero
// where threshold_backward gives 0), the others their window 1[lo (<=) x (<=) hi].
void make_mask(const Rule& r, const float* x, uint8_t* m, int64_t n) {
  if (r.kind == kReluTrue) {
    for (int64_t i = 0; i < n; ++i) m[i] = !(x[i] <= 0.0f);
    return;
  }
  with_window(r, [&](auto lo_closed, auto hi_closed) {
    const float lo = r.lo, hi = r.hi;
    for (int64_t i = 0; i < n; ++i) m[i] = in_window<lo_closed, hi_closed>(x[i], lo, hi);
  });
}

// apply_rule for kByte rules with their byte residual m (u contiguous)
void apply_rule_bytes(const Rule& r, float* __restrict g, const uint8_t* __restrict m,
                      const float* __restrict u, int64_t n) {
  switch (r.kind) {
    case kReluTrue:
      for (int64_t i = 0; i < n; ++i) g[i] = m[i] ? g[i] : 0.0f;
      return;
    case kMask:
      if (r.a == 0.0f) {
        for (int64_t i = 0; i < n; ++i) g[i] = g[i] * static_cast<float>(m[i]);
      } else {
        const float out = r.a;
        for (int64_t i = 0; i < n; ++i) g[i] = m[i] ? g[i] : g[i] * out;
      }
      return;
    case kJam:
      if (r.mode == 0) {
        for (int64_t i = 0; i < n; ++i) g[i] = (g[i] * u[i]) * static_cast<float>(m[i]);
      } else {
        for (int64_t i = 0; i < n; ++i) g[i] = (sign_of(g[i]) * u[i]) * static_cast<float>(m[i]);
      }
      return;
  }
  TORCH_CHECK(false, "wide_lenet: rule kind ", r.kind, " keeps no byte residual");
}

// Apply the rule in place to n gradients g; res: the residual (x or y, as residual() says);
// u: the random numbers, element i at u[i * u_step].
void apply_rule(const Rule& r, float* g, const float* res, const float* u, int64_t u_step,
                int64_t n) {
  switch (r.kind) {
    case kPass:
      return;
    case kReluTrue:
      for (int64_t i = 0; i < n; ++i) g[i] = res[i] <= 0.0f ? 0.0f : g[i];
      return;
    case kSigmoidTrue:
      for (int64_t i = 0; i < n; ++i) g[i] = g[i] * (1.0f - res[i]) * res[i];
      return;
    case kTanhTrue:
      for (int64_t i = 0; i < n; ++i) g[i] = g[i] * (1.0f - res[i] * res[i]);
      return;
    case kMask:
      with_window(r, [&](auto lo_closed, auto hi_closed) {
        const float lo = r.lo, hi = r.hi, out = r.a;
        if (out == 0.0f) {
          for (int64_t i = 0; i < n; ++i)
            g[i] = g[i] * static_cast<float>(in_window<lo_closed, hi_closed>(res[i], lo, hi));
        } else {
          for (int64_t i = 0; i < n; ++i)
            g[i] = in_window<lo_closed, hi_closed>(res[i], lo, hi) ? g[i] : g[i] * out;
        }
      });
      return;
    case kTriangular:
      for (int64_t i = 0; i < n; ++i) {
        float t = 1.0f - std::abs(res[i]) / r.a;
        t = std::isnan(t) ? t : std::max(t, 0.0f);
        g[i] = g[i] * t;
      }
      return;
    case kDLogistic: {
      std::vector<float> s(n);
      activate(kLogistic, res, s.data(), n);
      for (int64_t i = 0; i < n; ++i) g[i] = g[i] * s[i] * (1.0f - s[i]);
      return;
    }
    case kDTanh: {
      std::vector<float> t(n);
      activate(kTanh, res, t.data(), n);
      for (int64_t i = 0; i < n; ++i) g[i] = g[i] * (1.0f - t[i] * t[i]);
      return;
    }
    case kNoiseAdd:
      for (int64_t i = 0; i < n; ++i) g[i] = g[i] + r.a * u[i * u_step];
      return;
    case kNoiseMul:
      for (int64_t i = 0; i < n; ++i) g[i] = g[i] * (1.0f + r.a * u[i * u_step]);
      return;
    case kJam:
      if (u_step != 1) {  // an fc layer's (F, B) gradient: u strided, few numbers
        for (int64_t i = 0; i < n; ++i) {
          const float v = (r.mode == 0 ? g[i] : sign_of(g[i])) * u[i * u_step];
          if (r.mask_source == 0) g[i] = v;
          else g[i] = v * static_cast<float>(inside(r, r.mask_source == 1 ? res[i] : g[i]));
        }
        return;
      }
      with_window(r, [&](auto lo_closed, auto hi_closed) {
        const float lo = r.lo, hi = r.hi;
        const bool sign = r.mode != 0;
        if (r.mask_source == 0) {
          for (int64_t i = 0; i < n; ++i) g[i] = (sign ? sign_of(g[i]) : g[i]) * u[i];
        } else if (r.mask_source == 1) {
          for (int64_t i = 0; i < n; ++i)
            g[i] = ((sign ? sign_of(g[i]) : g[i]) * u[i]) *
                   static_cast<float>(in_window<lo_closed, hi_closed>(res[i], lo, hi));
        } else {
          for (int64_t i = 0; i < n; ++i)
            g[i] = ((sign ? sign_of(g[i]) : g[i]) * u[i]) *
                   static_cast<float>(in_window<lo_closed, hi_closed>(g[i], lo, hi));
        }
      });
      return;
    case kZero:
      std::fill(g, g + n, 0.0f);
      return;
    case kScale:
      for (int64_t i = 0; i < n; ++i) g[i] = g[i] * r.a;
      return;
  }
}

// --- U[0, 1) numbers as torch.rand(n, generator=g) draws them, 8-10x faster -------------------
// torch.rand on the CPU takes one 32-bit output y of the generator's MT19937 per float and
// returns (y & 0xFFFFFF) * 2^-24, one element at a time (~2.7 ns here). Here the engine's state
// is copied out, refilled 624 words at a time with 16-lane vectors (the standard MT19937
// recurrence), tempered and converted 16 at a time, and written back: the same numbers, and the
// generator left in the state torch.rand would leave it in.

constexpr int kMtN = 624, kMtM = 397;
constexpr uint32_t kMtA = 0x9908b0dfu, kUpper = 0x80000000u, kLower = 0x7fffffffu;

inline uint32_t mt_twist(uint32_t u, uint32_t v, uint32_t w) {  // w ^ twist(u, v)
  const uint32_t y = (u & kUpper) | (v & kLower);
  return w ^ (y >> 1) ^ ((v & 1u) ? kMtA : 0u);
}

void mt_refill(uint32_t* s) {
  int i = 0;
#ifdef __AVX512F__
  const __m512i upper = _mm512_set1_epi32(static_cast<int>(kUpper));
  const __m512i lower = _mm512_set1_epi32(static_cast<int>(kLower));
  const __m512i one = _mm512_set1_epi32(1), mag = _mm512_set1_epi32(static_cast<int>(kMtA));
  auto step = [&](int at, int far) {
    const __m512i u = _mm512_loadu_si512(s + at), v = _mm512_loadu_si512(s + at + 1);
    const __m512i w = _mm512_loadu_si512(s + far);
    const __m512i y = _mm512_or_si512(_mm512_and_si512(u, upper), _mm512_and_si512(v, lower));
    const __mmask16 odd = _mm512_test_epi32_mask(v, one);
    __m512i r = _mm512_xor_si512(w, _mm512_srli_epi32(y, 1));
    r = _mm512_mask_xor_epi32(r, odd, r, mag);
    _mm512_storeu_si512(s + at, r);
  };
  for (; i + 16 <= kMtN - kMtM; i += 16) step(i, i + kMtM);  // reads old words only
#endif
  for (; i < kMtN - kMtM; ++i) s[i] = mt_twist(s[i], s[i + 1], s[i + kMtM]);
#ifdef __AVX512F__
  for (; i + 16 <= kMtN - 1; i += 16) step(i, i + kMtM - kMtN);  // s[i - 227]: already new
#endif
  for (; i < kMtN - 1; ++i) s[i] = mt_twist(s[i], s[i + 1], s[i + kMtM - kMtN]);
  s[kMtN - 1] = mt_twist(s[kMtN - 1], s[0], s[kMtM - 1]);
}

inline float mt_uniform(uint32_t y) {
  y ^= (y >> 11);
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= (y >> 18);
  return static_cast<float>(y & 0xFFFFFFu) * (1.0f / 16777216.0f);
}

void mt_temper(const uint32_t* s, float* out, int64_t n) {
  int64_t i = 0;
#ifdef __AVX512F__
  const __m512i b = _mm512_set1_epi32(static_cast<int>(0x9d2c5680u));
  const __m512i c = _mm512_set1_epi32(static_cast<int>(0xefc60000u));
  const __m512i m = _mm512_set1_epi32(0xFFFFFF);
  const __m512 scale = _mm512_set1_ps(1.0f / 16777216.0f);
  for (; i + 16 <= n; i += 16) {
    __m512i y = _mm512_loadu_si512(s + i);
    y = _mm512_xor_si512(y, _mm512_srli_epi32(y, 11));
    y = _mm512_xor_si512(y, _mm512_and_si512(_mm512_slli_epi32(y, 7), b));
    y = _mm512_xor_si512(y, _mm512_and_si512(_mm512_slli_epi32(y, 15), c));
    y = _mm512_xor_si512(y, _mm512_srli_epi32(y, 18));
    y = _mm512_and_si512(y, m);
    _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_cvtepi32_ps(y), scale));
  }
#endif
  for (; i < n; ++i) out[i] = mt_uniform(s[i]);
}

// n numbers of torch.rand(..., generator=gen) into out (any split into calls gives the same).
void fill_uniform(const at::Generator& gen, float* out, int64_t n) {
  auto* impl = at::check_generator<at::CPUGeneratorImpl>(gen);
  std::lock_guard<std::mutex> lock(impl->mutex_);
  at::mt19937 engine = impl->engine();
  at::mt19937_data_pod d = engine.data();
  uint32_t* s = d.state_.data();
  int64_t avail = d.left_ - 1, next = d.next_;  // words s[next, next + avail) not yet used
  for (int64_t i = 0; i < n;) {
    if (avail == 0) {
      mt_refill(s);
      avail = kMtN;
      next = 0;
    }
    const int64_t k = std::min(avail, n - i);
    mt_temper(s + next, out + i, k);
    next += k;
    avail -= k;
    i += k;
  }
  d.left_ = static_cast<int>(avail + 1);
  d.next_ = static_cast<uint32_t>(next);
  engine.set_data(d);
  impl->set_engine(engine);
}

// N(0, 1) numbers as torch.randn(n, generator=gen) makes them (n >= 16, float32, contiguous):
// n uniforms first, then Box-Muller in place on each block of 16, over the pairs (j, j + 8):
// r = sqrt(-2 log(1 - u_j)), t = 2 pi u_{j+8}, (r cos t, r sin t); where n is not a multiple of
// 16, 16 more uniforms are drawn over the last 16 places and that block is redone. The uniforms
// and so the generator's state are torch's exactly; log, sin and cos are our own polynomials
// (a few ulp; torch has its own, Sleef's 1-ulp ones cost 8x more), so a number can differ from
// torch's in its last bits (tests: 5e-7 at most).
void box_muller_scalar(float* d) {
  const float two_pi = static_cast<float>(2.0 * M_PI);
  for (int j = 0; j < 8; ++j) {
    const float r = std::sqrt(-2.0f * std::log(1.0f - d[j]));
    const float t = two_pi * d[j + 8];
    d[j] = r * std::cos(t);
    d[j + 8] = r * std::sin(t);
  }
}

#ifdef __AVX512F__
// log x for x in (0, 1]: x = m 2^e, m in [1/sqrt 2, sqrt 2), log m = 2 atanh(s), s = (m-1)/(m+1)
inline __m512 log_unit(__m512 x) {
  const __m512i bits = _mm512_castps_si512(x);
  __m512i e = _mm512_sub_epi32(_mm512_srli_epi32(bits, 23), _mm512_set1_epi32(127));
  __m512 m = _mm512_castsi512_ps(_mm512_or_si512(_mm512_and_si512(bits, _mm512_set1_epi32(0x7FFFFF)),
                                                 _mm512_set1_epi32(0x3F800000)));
  const __mmask16 big = _mm512_cmp_ps_mask(m, _mm512_set1_ps(1.41421356f), _CMP_GT_OQ);
  m = _mm512_mask_mul_ps(m, big, m, _mm512_set1_ps(0.5f));
  e = _mm512_mask_add_epi32(e, big, e, _mm512_set1_epi32(1));
  const __m512 f = _mm512_sub_ps(m, _mm512_set1_ps(1.0f));
  const __m512 sv = _mm512_div_ps(f, _mm512_add_ps(f, _mm512_set1_ps(2.0f)));
  const __m512 s2 = _mm512_mul_ps(sv, sv);
  __m512 q = _mm512_set1_ps(1.0f / 9.0f);
  q = _mm512_fmadd_ps(q, s2, _mm512_set1_ps(1.0f / 7.0f));
  q = _mm512_fmadd_ps(q, s2, _mm512_set1_ps(1.0f / 5.0f));
  q = _mm512_fmadd_ps(q, s2, _mm512_set1_ps(1.0f / 3.0f));
  q = _mm512_mul_ps(q, s2);  // log m = 2s + 2s q
  const __m512 two_s = _mm512_add_ps(sv, sv);
  const __m512 logm = _mm512_fmadd_ps(two_s, q, two_s);
  const __m512 ef = _mm512_cvtepi32_ps(e);
  // e ln 2 in two parts (0.693145751953125 is exact in 16 bits)
  return _mm512_fmadd_ps(ef, _mm512_set1_ps(0.693145751953125f),
                         _mm512_fmadd_ps(ef, _mm512_set1_ps(1.42860682030941723212e-6f), logm));
}

// sin and cos of t in [0, 2 pi]: t = j pi/2 + r (pi/2 in three parts), |r| <= pi/4, Taylor
// polynomials of r, the quadrant j mod 4 picking and signing them
inline void sincos_turn(__m512 t, __m512* sn, __m512* cs) {
  const __m512 j = _mm512_roundscale_ps(_mm512_mul_ps(t, _mm512_set1_ps(0.636619772367581343f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(j, _mm512_set1_ps(1.5703125f), t);
  r = _mm512_fnmadd_ps(j, _mm512_set1_ps(4.837512969970703125e-4f), r);
  r = _mm512_fnmadd_ps(j, _mm512_set1_ps(7.54978995489188216e-8f), r);
  const __m512 r2 = _mm512_mul_ps(r, r);
  __m512 ps = _mm512_set1_ps(1.0f / 362880.0f);
  ps = _mm512_fmadd_ps(ps, r2, _mm512_set1_ps(-1.0f / 5040.0f));
  ps = _mm512_fmadd_ps(ps, r2, _mm512_set1_ps(1.0f / 120.0f));
  ps = _mm512_fmadd_ps(ps, r2, _mm512_set1_ps(-1.0f / 6.0f));
  ps = _mm512_mul_ps(ps, r2);
  const __m512 sr = _mm512_fmadd_ps(ps, r, r);
  __m512 pc = _mm512_set1_ps(-1.0f / 3628800.0f);
  pc = _mm512_fmadd_ps(pc, r2, _mm512_set1_ps(1.0f / 40320.0f));
  pc = _mm512_fmadd_ps(pc, r2, _mm512_set1_ps(-1.0f / 720.0f));
  pc = _mm512_fmadd_ps(pc, r2, _mm512_set1_ps(1.0f / 24.0f));
  pc = _mm512_fmadd_ps(pc, r2, _mm512_set1_ps(-0.5f));
  const __m512 cr = _mm512_fmadd_ps(pc, r2, _mm512_set1_ps(1.0f));
  const __m512i q = _mm512_and_si512(_mm512_cvtps_epi32(j), _mm512_set1_epi32(3));
  const __mmask16 odd = _mm512_test_epi32_mask(q, _mm512_set1_epi32(1));
  const __mmask16 sneg = _mm512_test_epi32_mask(q, _mm512_set1_epi32(2));  // q = 2, 3
  const __mmask16 cneg = _mm512_cmp_epi32_mask(_mm512_add_epi32(q, _mm512_set1_epi32(1)),
                                               _mm512_set1_epi32(2), _MM_CMPINT_NLT) &
                         _mm512_cmp_epi32_mask(q, _mm512_set1_epi32(3), _MM_CMPINT_LT);  // q = 1, 2
  const __m512 s0 = _mm512_mask_blend_ps(odd, sr, cr), c0 = _mm512_mask_blend_ps(odd, cr, sr);
  const __m512 sign = _mm512_set1_ps(-0.0f);
  *sn = _mm512_mask_xor_ps(s0, sneg, s0, sign);
  *cs = _mm512_mask_xor_ps(c0, cneg, c0, sign);
}
#endif

void box_muller(float* d, int64_t blocks) {  // blocks of 16
  int64_t b = 0;
#ifdef __AVX512F__
  const __m512i lo = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
  const __m512i hi = _mm512_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  const __m512 one = _mm512_set1_ps(1.0f), minus_two = _mm512_set1_ps(-2.0f);
  const __m512 two_pi = _mm512_set1_ps(static_cast<float>(2.0 * M_PI));
  for (; b + 2 <= blocks; b += 2) {  // two blocks: u_j of both in a, u_{j+8} in c
    float* p = d + b * 16;
    const __m512 v0 = _mm512_loadu_ps(p), v1 = _mm512_loadu_ps(p + 16);
    const __m512 a = _mm512_permutex2var_ps(v0, lo, v1), c = _mm512_permutex2var_ps(v0, hi, v1);
    const __m512 r = _mm512_sqrt_ps(_mm512_mul_ps(minus_two, log_unit(_mm512_sub_ps(one, a))));
    __m512 sn, cs;
    sincos_turn(_mm512_mul_ps(two_pi, c), &sn, &cs);
    const __m512 n1 = _mm512_mul_ps(r, cs), n2 = _mm512_mul_ps(r, sn);
    _mm512_storeu_ps(p, _mm512_permutex2var_ps(n1, lo, n2));
    _mm512_storeu_ps(p + 16, _mm512_permutex2var_ps(n1, hi, n2));
  }
#endif
  for (; b < blocks; ++b) box_muller_scalar(d + b * 16);
}

void fill_normal(const at::Generator& gen, float* out, int64_t n) {
  TORCH_CHECK(n >= 16, "wide_lenet: normal draws of fewer than 16 numbers are not supported");
  fill_uniform(gen, out, n);
  box_muller(out, n / 16);
  if (n % 16) {
    fill_uniform(gen, out + n - 16, 16);
    box_muller(out + n - 16, 1);
  }
}

torch::Tensor randn_like_torch(const at::Generator& gen, int64_t n) {  // for the tests
  auto out = torch::empty({n}, torch::kFloat32);
  fill_normal(gen, out.data_ptr<float>(), n);
  return out;
}

torch::Tensor rand_like_torch(const at::Generator& gen, int64_t n) {  // for the tests
  auto out = torch::empty({n}, torch::kFloat32);
  fill_uniform(gen, out.data_ptr<float>(), n);
  return out;
}

// --- the convolution tiles -------------------------------------------------------------------

// --- conv1 (1 -> 6 channels, 5x5, padding 2) as a direct convolution -------------------------
// With one input channel, im2col would copy each image 25 times for a GEMM of inner size 26
// (MKL: 30-50 GFLOP/s); instead the 28 outputs of a row are 2 vectors (16 + 12 lanes) and each
// of the 150 weights one broadcast FMA, the accumulators in registers.

constexpr int64_t kPad = 32 * 32 + 32;  // a zero-padded 32x32 image, and slack for the last loads

// img (28x28) into xp (32x32, 2 zeros around).
void pad_image(const float* img, float* xp) {
  std::memset(xp, 0, kPad * sizeof(float));
  for (int64_t y = 0; y < 28; ++y) std::memcpy(xp + (y + 2) * 32 + 2, img + y * 28, 28 * sizeof(float));
}

#ifndef __AVX512F__
// z (6 rows of ld floats; image t's 784 at t * 784) = conv1(image) + bias, w: (6, 26): the
// plain loops of builds without AVX-512 (conv1_fused's arithmetic, other summation order).
void conv1_image(const float* w, const float* xp, float* z, int64_t ld) {
  for (int64_t c = 0; c < kC1; ++c) {
    for (int64_t y = 0; y < 28; ++y) {
      for (int64_t x = 0; x < 28; ++x) {
        float a = w[c * kK1 + 25];
        for (int64_t kh = 0; kh < 5; ++kh)
          for (int64_t kw = 0; kw < 5; ++kw) a = std::fma(w[c * kK1 + kh * 5 + kw], xp[(y + kh) * 32 + x + kw], a);
        z[c * ld + y * 28 + x] = a;
      }
    }
  }
}
#endif

#ifdef __AVX512F__
// conv1, its activation, what the backward keeps of it and the 2x2 pooling, for one image, two
// output rows at a time (24 accumulators; each loaded row of x feeds both), nothing of the
// 28x28 maps written but the residual: r (channel c's 784 at r + c * rstride, floats or bytes
// as res says) and the pooled p (channel c's 196 at p + c * pstride). The activation is ATen's
// arithmetic on whole vectors; the pooling ((a + b) + c) + d then / 4, as avg_pool2d.
void conv1_fused(const float* w, const float* xp, int64_t fwd, const Rule* rule, int64_t res,
                 void* r, int64_t rstride, float* p, int64_t pstride) {
  const __mmask16 tail = 0x0FFF;
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f), quarter = _mm512_set1_ps(0.25f);
  for (int64_t y = 0; y < 28; y += 2) {
    __m512 acc[kC1][2][2];  // [channel][row y, y + 1][lanes 0-15, 16-31]
    for (int64_t c = 0; c < kC1; ++c)
      acc[c][0][0] = acc[c][0][1] = acc[c][1][0] = acc[c][1][1] = _mm512_set1_ps(w[c * kK1 + 25]);
    for (int64_t rr = 0; rr < 6; ++rr) {  // input row y + rr: kh = rr for row y, rr - 1 for y + 1
      const float* row = xp + (y + rr) * 32;
      for (int64_t kw = 0; kw < 5; ++kw) {
        const __m512 v0 = _mm512_loadu_ps(row + kw), v1 = _mm512_loadu_ps(row + kw + 16);
        if (rr < 5) {
          for (int64_t c = 0; c < kC1; ++c) {
            const __m512 wv = _mm512_set1_ps(w[c * kK1 + rr * 5 + kw]);
            acc[c][0][0] = _mm512_fmadd_ps(wv, v0, acc[c][0][0]);
            acc[c][0][1] = _mm512_fmadd_ps(wv, v1, acc[c][0][1]);
          }
        }
        if (rr > 0) {
          for (int64_t c = 0; c < kC1; ++c) {
            const __m512 wv = _mm512_set1_ps(w[c * kK1 + (rr - 1) * 5 + kw]);
            acc[c][1][0] = _mm512_fmadd_ps(wv, v0, acc[c][1][0]);
            acc[c][1][1] = _mm512_fmadd_ps(wv, v1, acc[c][1][1]);
          }
        }
      }
    }
    for (int64_t c = 0; c < kC1; ++c) {
      __m512 out[2][2];
      for (int64_t i = 0; i < 2; ++i) {
        for (int64_t h = 0; h < 2; ++h) {
          const __m512 z = acc[c][i][h];
          const int64_t at = c * rstride + (y + i) * 28 + h * 16;
          if (res == kInput) {
            float* dst = static_cast<float*>(r) + at;
            if (h == 0) _mm512_storeu_ps(dst, z);
            else _mm512_mask_storeu_ps(dst, tail, z);
          } else if (res == kByte) {
            __mmask16 m;
            if (rule->kind == kReluTrue) {
              m = _mm512_cmp_ps_mask(z, zero, _CMP_NLE_UQ);  // !(z <= 0)
            } else {
              const __m512 lo = _mm512_set1_ps(rule->lo), hi = _mm512_set1_ps(rule->hi);
              m = (rule->lo_closed ? _mm512_cmp_ps_mask(z, lo, _CMP_GE_OQ)
                                   : _mm512_cmp_ps_mask(z, lo, _CMP_GT_OQ)) &
                  (rule->hi_closed ? _mm512_cmp_ps_mask(z, hi, _CMP_LE_OQ)
                                   : _mm512_cmp_ps_mask(z, hi, _CMP_LT_OQ));
            }
            uint8_t* dst = static_cast<uint8_t*>(r) + at;
            _mm_mask_storeu_epi8(dst, h == 0 ? 0xFFFF : tail, _mm_maskz_set1_epi8(m, 1));
          }
          __m512 a;
          switch (fwd) {
            case kRelu: a = _mm512_mask_mov_ps(z, _mm512_cmp_ps_mask(z, zero, _CMP_LT_OQ), zero); break;
            case kLogistic: a = _mm512_div_ps(one, _mm512_add_ps(Sleef_expf16_u10(-z), one)); break;
            case kTanh: a = Sleef_tanhf16_u10(z); break;
            default: a = z;
          }
          if (res == kOutput) {
            float* dst = static_cast<float*>(r) + at;
            if (h == 0) _mm512_storeu_ps(dst, a);
            else _mm512_mask_storeu_ps(dst, tail, a);
          }
          out[i][h] = a;
        }
      }
      // pooled row y / 2: lanes 0-13, each (((y0[2j] + y0[2j+1]) + y1[2j]) + y1[2j+1]) / 4
      const __m512 e0 = _mm512_permutex2var_ps(out[0][0], even, out[0][1]);
      const __m512 o0 = _mm512_permutex2var_ps(out[0][0], odd, out[0][1]);
      const __m512 e1 = _mm512_permutex2var_ps(out[1][0], even, out[1][1]);
      const __m512 o1 = _mm512_permutex2var_ps(out[1][0], odd, out[1][1]);
      const __m512 sum = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(e0, o0), e1), o1);
      _mm512_mask_storeu_ps(p + c * pstride + (y / 2) * 14, 0x3FFF, _mm512_mul_ps(sum, quarter));
    }
  }
}
#endif

// Partial sums of conv1's weight gradient over images, for one (channel, kh): lanes of
// dz * shifted x for each kw (5 x 2 vectors), and of dz (the bias, kh == 0): reduced at the end.
struct Conv1Grad {
  float part[kC1][5][6][32];  // [c][kh][kw (5: the bias)][lane]
  void zero() { std::memset(part, 0, sizeof(part)); }
  // dz: 6 rows of ld floats, this image's 784 at offset 0 of each row
  void add(const float* dz, int64_t ld, const float* xp) {
#ifdef __AVX512F__
    // two channels a pass: each shifted row of x is loaded once for 4 FMAs (20 accumulators)
    const __mmask16 tail = 0x0FFF;
    for (int64_t c = 0; c < kC1; c += 2) {
      const float* da = dz + c * ld;
      const float* db = dz + (c + 1) * ld;
      for (int64_t kh = 0; kh < 5; ++kh) {
        __m512 acc[2][5][2];
        for (int64_t i = 0; i < 2; ++i)
          for (int64_t kw = 0; kw < 5; ++kw) {
            acc[i][kw][0] = _mm512_loadu_ps(part[c + i][kh][kw]);
            acc[i][kw][1] = _mm512_loadu_ps(part[c + i][kh][kw] + 16);
          }
        for (int64_t y = 0; y < 28; ++y) {
          const __m512 a0 = _mm512_loadu_ps(da + y * 28);
          const __m512 a1 = _mm512_maskz_loadu_ps(tail, da + y * 28 + 16);
          const __m512 b0 = _mm512_loadu_ps(db + y * 28);
          const __m512 b1 = _mm512_maskz_loadu_ps(tail, db + y * 28 + 16);
          const float* row = xp + (y + kh) * 32;
          for (int64_t kw = 0; kw < 5; ++kw) {
            const __m512 x0 = _mm512_loadu_ps(row + kw), x1 = _mm512_loadu_ps(row + kw + 16);
            acc[0][kw][0] = _mm512_fmadd_ps(a0, x0, acc[0][kw][0]);
            acc[0][kw][1] = _mm512_fmadd_ps(a1, x1, acc[0][kw][1]);
            acc[1][kw][0] = _mm512_fmadd_ps(b0, x0, acc[1][kw][0]);
            acc[1][kw][1] = _mm512_fmadd_ps(b1, x1, acc[1][kw][1]);
          }
        }
        for (int64_t i = 0; i < 2; ++i)
          for (int64_t kw = 0; kw < 5; ++kw) {
            _mm512_storeu_ps(part[c + i][kh][kw], acc[i][kw][0]);
            _mm512_storeu_ps(part[c + i][kh][kw] + 16, acc[i][kw][1]);
          }
      }
    }
    for (int64_t c = 0; c < kC1; ++c) {  // the bias: the sum of dz
      const float* d = dz + c * ld;
      __m512 s0 = _mm512_loadu_ps(part[c][0][5]), s1 = _mm512_loadu_ps(part[c][0][5] + 16);
      for (int64_t y = 0; y < 28; ++y) {
        s0 = _mm512_add_ps(s0, _mm512_loadu_ps(d + y * 28));
        s1 = _mm512_add_ps(s1, _mm512_maskz_loadu_ps(tail, d + y * 28 + 16));
      }
      _mm512_storeu_ps(part[c][0][5], s0);
      _mm512_storeu_ps(part[c][0][5] + 16, s1);
    }
#else
    for (int64_t c = 0; c < kC1; ++c) {
      const float* d = dz + c * ld;
      for (int64_t kh = 0; kh < 5; ++kh) {
        for (int64_t y = 0; y < 28; ++y) {
          for (int64_t x = 0; x < 28; ++x) {
            const float g = d[y * 28 + x];
            for (int64_t kw = 0; kw < 5; ++kw) part[c][kh][kw][x] += g * xp[(y + kh) * 32 + x + kw];
            if (kh == 0) part[c][kh][5][x] += g;
          }
        }
      }
    }
#endif
  }
  // the gradient (6, 26): each weight's 32 lanes summed pairwise in a fixed order
  void reduce(float* g) const {
    for (int64_t c = 0; c < kC1; ++c) {
      for (int64_t k = 0; k < 26; ++k) {
        const float* lanes = k == 25 ? part[c][0][5] : part[c][k / 5][k % 5];
        float v[32];
        std::memcpy(v, lanes, sizeof(v));
        for (int64_t width = 16; width >= 1; width /= 2)
          for (int64_t i = 0; i < width; ++i) v[i] += v[i + width];
        g[c * kK1 + k] = v[0];
      }
    }
  }
};

// 2x2 average pooling of (C, T, h, w) into (C, T, h/2, w/2): ((a + b) + c) + d then / 4, the
// order of ATen's avg_pool2d.
void pool(const float* y, int64_t rows, int64_t h, int64_t w, float* p) {
  const int64_t ph = h / 2, pw = w / 2;
  for (int64_t r = 0; r < rows; ++r) {
    const float* in = y + r * h * w;
    float* out = p + r * ph * pw;
    for (int64_t i = 0; i < ph; ++i) {
      const float* a = in + 2 * i * w;
      const float* b = a + w;
      for (int64_t j = 0; j < pw; ++j) {
        out[i * pw + j] = (((a[2 * j] + a[2 * j + 1]) + b[2 * j]) + b[2 * j + 1]) / 4.0f;
      }
    }
  }
}

// conv2's im2col from the pooled tile p (6, T, 14, 14): (151, T*100) with rows ld2(T) apart
// (16 floats of slack each), row 150 ones. p must have 16 readable floats past its end.
inline int64_t ld2(int64_t T) { return T * kP2 + 16; }

void im2col2(const float* p, int64_t T, float* col) {
  const int64_t ld = ld2(T);
#ifdef __AVX512F__
  // each 10-float row out of one 16-lane load, shifted per kw and stored whole: the 6 extra
  // floats land where the next store (or the row's slack) overwrites them
  for (int64_t ci = 0; ci < kC1; ++ci) {
    for (int64_t kh = 0; kh < 5; ++kh) {
      float* rows = col + (ci * 25 + kh * 5) * ld;
      for (int64_t t = 0; t < T; ++t) {
        const float* src = p + (ci * T + t) * kQ1 + kh * 14;
        float* out = rows + t * kP2;
        for (int64_t y = 0; y < 10; ++y) {
          const __m512i v = _mm512_loadu_si512(src + y * 14);  // the row's 14, and 2 more
          float* o = out + y * 10;
          _mm512_storeu_si512(o, v);
          _mm512_storeu_si512(o + ld, _mm512_alignr_epi32(v, v, 1));
          _mm512_storeu_si512(o + 2 * ld, _mm512_alignr_epi32(v, v, 2));
          _mm512_storeu_si512(o + 3 * ld, _mm512_alignr_epi32(v, v, 3));
          _mm512_storeu_si512(o + 4 * ld, _mm512_alignr_epi32(v, v, 4));
        }
      }
    }
  }
#else
  for (int64_t ci = 0; ci < kC1; ++ci) {
    for (int64_t kh = 0; kh < 5; ++kh) {
      for (int64_t kw = 0; kw < 5; ++kw) {
        float* row = col + (ci * 25 + kh * 5 + kw) * ld;
        for (int64_t t = 0; t < T; ++t) {
          const float* src = p + (ci * T + t) * kQ1 + kh * 14 + kw;
          float* out = row + t * kP2;
          for (int64_t y = 0; y < 10; ++y) std::memcpy(out + y * 10, src + y * 14, 10 * sizeof(float));
        }
      }
    }
  }
#endif
  std::fill(col + 150 * ld, col + 150 * ld + T * kP2, 1.0f);
}

// col2im of conv2's input gradient: dcol (150, T*100) summed into dp (6, T, 14, 14); each
// output row is summed in a register over the (kh, kw) that reach it.
void col2im2(const float* dcol, int64_t T, float* dp) {
  const int64_t ld = T * kP2;
#ifdef __AVX512F__
  for (int64_t ci = 0; ci < kC1; ++ci) {
    for (int64_t t = 0; t < T; ++t) {
      float* dst = dp + (ci * T + t) * kQ1;
      const float* src = dcol + ci * 25 * ld + t * kP2;
      for (int64_t r = 0; r < 14; ++r) {
        __m512 acc = _mm512_setzero_ps();
        for (int64_t kh = std::max<int64_t>(0, r - 9); kh <= std::min<int64_t>(4, r); ++kh) {
          const float* in = src + kh * 5 * ld + (r - kh) * 10;
          for (int64_t kw = 0; kw < 5; ++kw)  // lanes kw..kw+9 from in[0..10)
            acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(static_cast<__mmask16>(0x3FF << kw),
                                                           in + kw * ld - kw));
        }
        _mm512_mask_storeu_ps(dst + r * 14, 0x3FFF, acc);
      }
    }
  }
#else
  std::fill(dp, dp + kC1 * T * kQ1, 0.0f);
  for (int64_t ci = 0; ci < kC1; ++ci) {
    for (int64_t kh = 0; kh < 5; ++kh) {
      for (int64_t kw = 0; kw < 5; ++kw) {
        const float* row = dcol + (ci * 25 + kh * 5 + kw) * ld;
        for (int64_t t = 0; t < T; ++t) {
          float* dst = dp + (ci * T + t) * kQ1 + kh * 14 + kw;
          const float* src = row + t * kP2;
          for (int64_t y = 0; y < 10; ++y) {
            for (int64_t x = 0; x < 10; ++x) dst[y * 14 + x] += src[y * 10 + x];
          }
        }
      }
    }
  }
#endif
}

// The pooling's backward: each of the 4 inputs of a window gets the window's gradient / 4.
void unpool(const float* dp, int64_t rows, int64_t h, int64_t w, float* dy) {
  const int64_t ph = h / 2, pw = w / 2;
  for (int64_t r = 0; r < rows; ++r) {
    const float* in = dp + r * ph * pw;
    float* out = dy + r * h * w;
    for (int64_t i = 0; i < h; ++i) {
      for (int64_t j = 0; j < w; ++j) out[i * w + j] = in[(i / 2) * pw + j / 2] / 4.0f;
    }
  }
}

// conv1's pooling backward for one channel of one image: 14x14 window gradients -> 28x28 / 4
void unpool28(const float* dp, float* dy) {
#ifdef __AVX512F__
  const __m512i first = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  const __m512i second = _mm512_setr_epi32(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 13, 13, 13, 13);
  const __m512 quarter = _mm512_set1_ps(0.25f);  // x * 0.25 == x / 4, exactly
  for (int64_t i = 0; i < 14; ++i) {
    const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(0x3FFF, dp + i * 14), quarter);
    const __m512 a = _mm512_permutexvar_ps(first, v), b = _mm512_permutexvar_ps(second, v);
    float* r0 = dy + 2 * i * 28;
    _mm512_storeu_ps(r0, a);
    _mm512_mask_storeu_ps(r0 + 16, 0x0FFF, b);
    _mm512_storeu_ps(r0 + 28, a);
    _mm512_mask_storeu_ps(r0 + 44, 0x0FFF, b);
  }
#else
  unpool(dp, 1, 28, 28, dy);
#endif
}

// Apply a rule to a conv tile's gradient g (C, T, P) whose random numbers u are the solo
// run's (B, C, P) tensor: element (c, t, p) at u[((b0 + t) * C + c) * P + p].
// res: the tile's residual (floats, or bytes for kByte rules), laid out as g.
void conv_rule(const Rule& r, float* g, const float* res, const float* u, int64_t C, int64_t T,
               int64_t P, int64_t b0) {
  const bool bytes = r.residual() == kByte;
  const uint8_t* m = reinterpret_cast<const uint8_t*>(res);
  if (!r.draws()) {
    if (bytes) apply_rule_bytes(r, g, m, nullptr, C * T * P);
    else apply_rule(r, g, res, nullptr, 1, C * T * P);
    return;
  }
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t t = 0; t < T; ++t) {
      const int64_t at = (c * T + t) * P;
      const float* uu = u + ((b0 + t) * C + c) * P;
      if (bytes) apply_rule_bytes(r, g + at, m + at, uu, P);
      else apply_rule(r, g + at, res ? res + at : nullptr, uu, 1, P);
    }
  }
}

// An fc gradient g (F, B) whose random numbers are the solo run's (B, F): (f, b) at u[b * F + f].
void fc_rule(const Rule& r, float* g, const float* res, const float* u, int64_t F, int64_t B) {
  if (!r.draws()) {
    apply_rule(r, g, res, nullptr, 1, F * B);
    return;
  }
  for (int64_t f = 0; f < F; ++f) {
    apply_rule(r, g + f * B, res ? res + f * B : nullptr, u + f, F, B);
  }
}

struct Workspace {
  std::vector<float> buf;
  float* take(int64_t n) {  // bump allocation inside one call
    float* p = buf.data() + used;
    used += (n + 15) / 16 * 16;
    return p;
  }
  void reset(int64_t need) {
    if (static_cast<int64_t>(buf.size()) < need) buf.resize(need);
    used = 0;
  }
  int64_t used = 0;
};

thread_local Workspace ws;

int64_t tile_floats(int64_t T) {
  return kPad + kC1 * T * kP1 * 2 + kC1 * T * kQ1 + 16 + kK2 * ld2(T) + kC2 * T * kP2 * 2 +
         150 * T * kP2 + 16 * 8;
}

struct Views {
  const float* w1; const float* w2; const float* f1; const float* f2; const float* f3;
};

Views views(const float* p) {
  return {p + kO1, p + kO2, p + kO3, p + kO4, p + kO5};
}

// Forward of the convolutions for images img[0..B): fills a3 (401, B) (its last row ones) and,
// when store, the residuals of both conv activations (r1: (6, T, 784) blocks, r2: (16, T, 100)
// blocks, tile after tile) and the pooled conv1 output pool1 ((6, T, 196) blocks).
void conv_forward(const Views& w, const float* const* img, int64_t B, int64_t T, int64_t fwd,
                  const Rule* rule, int64_t res1, int64_t res2, float* r1, float* r2, float* pool1, float* a3,
                  float* scratch) {
  float* xp = scratch;
  float* z1 = xp + kPad;
  float* y1 = z1 + kC1 * T * kP1;
  float* p1tmp = y1 + kC1 * T * kP1;
  float* col2 = p1tmp + kC1 * T * kQ1 + 16;
  float* z2 = col2 + kK2 * ld2(T);
  float* y2 = z2 + kC2 * T * kP2;
  for (int64_t b0 = 0; b0 < B; b0 += T) {
    const int64_t n = std::min(T, B - b0);
    mark(-1);
    float* p1 = pool1 ? pool1 + b0 * kC1 * kQ1 : p1tmp;
#ifdef __AVX512F__
    for (int64_t t = 0; t < n; ++t) {
      pad_image(img[b0 + t], xp);
      void* r = res1 == kNone ? nullptr
                : res1 == kByte ? static_cast<void*>(reinterpret_cast<uint8_t*>(r1) +
                                                     b0 * kC1 * kP1 + t * kP1)
                                : static_cast<void*>(r1 + b0 * kC1 * kP1 + t * kP1);
      conv1_fused(w.w1, xp, fwd, rule, res1, r, n * kP1, p1 + t * kQ1, n * kQ1);
    }
    mark(1);
#else
    for (int64_t t = 0; t < n; ++t) {
      pad_image(img[b0 + t], xp);
      conv1_image(w.w1, xp, z1 + t * kP1, n * kP1);
    }
    mark(1);
    activate(fwd, z1, y1, kC1 * n * kP1);
    if (res1 == kInput) std::memcpy(r1 + b0 * kC1 * kP1, z1, kC1 * n * kP1 * sizeof(float));
    if (res1 == kOutput) std::memcpy(r1 + b0 * kC1 * kP1, y1, kC1 * n * kP1 * sizeof(float));
    if (res1 == kByte)
      make_mask(*rule, z1, reinterpret_cast<uint8_t*>(r1) + b0 * kC1 * kP1, kC1 * n * kP1);
    mark(2);
    pool(y1, kC1 * n, 28, 28, p1);
#endif
    mark(3);
    im2col2(p1, n, col2);
    mark(4);
    gemm(false, false, kC2, n * kP2, kK2, w.w2, kK2, col2, ld2(n), 0.0f, z2, n * kP2);
    mark(5);
    activate(fwd, z2, y2, kC2 * n * kP2);
    if (res2 == kInput) std::memcpy(r2 + b0 * kC2 * kP2, z2, kC2 * n * kP2 * sizeof(float));
    if (res2 == kOutput) std::memcpy(r2 + b0 * kC2 * kP2, y2, kC2 * n * kP2 * sizeof(float));
    if (res2 == kByte)
      make_mask(*rule, z2, reinterpret_cast<uint8_t*>(r2) + b0 * kC2 * kP2, kC2 * n * kP2);
    // pool2 straight into the fc input: a3[c * 25 + q][b0 + t]
    for (int64_t c = 0; c < kC2; ++c) {
      for (int64_t t = 0; t < n; ++t) {
        const float* in = y2 + (c * n + t) * kP2;
        for (int64_t i = 0; i < 5; ++i) {
          const float* a = in + 2 * i * 10;
          const float* bb = a + 10;
          for (int64_t j = 0; j < 5; ++j) {
            a3[(c * kQ2 + i * 5 + j) * B + b0 + t] =
                (((a[2 * j] + a[2 * j + 1]) + bb[2 * j]) + bb[2 * j + 1]) / 4.0f;
          }
        }
      }
    }
    mark(6);
  }
  std::fill(a3 + 400 * B, a3 + 401 * B, 1.0f);
}

// The fc layers: z3, a4 = (f(z3); 1), z4, a5 = (f(z4); 1), logits (B, nc).
void fc_forward(const Views& w, int64_t B, int64_t nc, int64_t fwd, const float* a3, float* z3,
                float* a4, float* z4, float* a5, float* logits) {
  gemm(false, false, kF1, B, kIn1, w.f1, kIn1, a3, B, 0.0f, z3, B);
  activate(fwd, z3, a4, kF1 * B);
  std::fill(a4 + kF1 * B, a4 + kIn2 * B, 1.0f);
  gemm(false, false, kF2, B, kIn2, w.f2, kIn2, a4, B, 0.0f, z4, B);
  activate(fwd, z4, a5, kF2 * B);
  std::fill(a5 + kF2 * B, a5 + kIn3 * B, 1.0f);
  gemm(true, true, B, nc, kIn3, a5, B, w.f3, kIn3, 0.0f, logits, nc);
}

void check_member(const torch::Tensor& params, int64_t nc) {
  TORCH_CHECK(params.scalar_type() == torch::kFloat32 && params.is_contiguous() &&
                  params.numel() == kO5 + nc * kIn3,
              "wide_lenet: params must be a contiguous float32 vector of ", kO5 + nc * kIn3);
}

void check_images(const torch::Tensor& x) {
  TORCH_CHECK(x.scalar_type() == torch::kFloat32 && x.is_contiguous() && x.dim() >= 2 &&
                  x.numel() == x.size(0) * kP1,
              "wide_lenet: images must be a contiguous float32 (N, 28, 28) tensor");
}

// Logits (n, nc) of images x[start, start + n) (evaluation: no residuals kept).
torch::Tensor forward(const torch::Tensor& params, int64_t nc, const torch::Tensor& x,
                      int64_t start, int64_t n, int64_t fwd, int64_t tile) {
  check_member(params, nc);
  check_images(x);
  TORCH_CHECK(start >= 0 && n > 0 && start + n <= x.size(0), "wide_lenet: bad image range");
  const Views w = views(params.data_ptr<float>());
  const int64_t T = std::max<int64_t>(1, std::min(tile, n));
  ws.reset(tile_floats(T) + kIn1 * n + kF1 * n + kIn2 * n + kF2 * n + kIn3 * n + 64 * 6);
  float* scratch = ws.take(tile_floats(T));
  float* a3 = ws.take(kIn1 * n);
  float* z3 = ws.take(kF1 * n);
  float* a4 = ws.take(kIn2 * n);
  float* z4 = ws.take(kF2 * n);
  float* a5 = ws.take(kIn3 * n);
  std::vector<const float*> img(n);
  const float* base = x.data_ptr<float>() + start * kP1;
  for (int64_t i = 0; i < n; ++i) img[i] = base + i * kP1;
  conv_forward(w, img.data(), n, T, fwd, nullptr, kNone, kNone, nullptr, nullptr, nullptr, a3,
               scratch);
  auto logits = torch::empty({n, nc}, torch::kFloat32);
  fc_forward(w, n, nc, fwd, a3, z3, a4, z4, a5, logits.data_ptr<float>());
  return logits;
}

const float* draws(const std::optional<torch::Tensor>& u, int64_t n, const char* name) {
  TORCH_CHECK(u.has_value(), "wide_lenet: the rule draws random numbers but ", name, " is missing");
  TORCH_CHECK(u->scalar_type() == torch::kFloat32 && u->is_contiguous() && u->numel() == n,
              "wide_lenet: ", name, " must be a contiguous float32 tensor of ", n, " numbers");
  return u->data_ptr<float>();
}

// One SGD step of one member on the batch x[idx]: (loss, correct). A loss that is not finite
// returns before the backward: the parameters and momentum are left as they were.
std::tuple<double, int64_t> step(torch::Tensor params, torch::Tensor grad, torch::Tensor mom,
                                 bool mom_init, int64_t nc, const torch::Tensor& x,
                                 const torch::Tensor& y, const torch::Tensor& idx, int64_t fwd,
                                 const torch::Tensor& rule_spec,
                                 const std::optional<torch::Tensor>& u4,
                                 const std::optional<torch::Tensor>& u3,
                                 const std::optional<torch::Tensor>& u2,
                                 const std::optional<torch::Tensor>& u1,
                                 const std::optional<at::Generator>& gen, double lr,
                                 double momentum, double weight_decay, int64_t tile) {
  check_member(params, nc);
  check_member(grad, nc);
  check_images(x);
  TORCH_CHECK(y.scalar_type() == torch::kInt64 && y.is_contiguous() && y.numel() == x.size(0),
              "wide_lenet: labels must be int64, one per image");
  TORCH_CHECK(idx.scalar_type() == torch::kInt64 && idx.is_contiguous() && idx.dim() == 1 &&
                  idx.numel() > 0,
              "wide_lenet: idx must be a non-empty int64 vector");
  const bool use_mom = momentum != 0.0;
  if (use_mom) check_member(mom, nc);
  const Rule rule = parse_rule(rule_spec);
  const int64_t B = idx.numel();
  const int64_t T = std::max<int64_t>(1, std::min(tile, B));
  const int64_t res = rule.residual();
  // the random numbers: given (u4..u1), or drawn here from the member's generator
  const bool given = rule.draws() && u4.has_value();
  const float* U4 = given ? draws(u4, B * kF2, "u4") : nullptr;
  const float* U3 = given ? draws(u3, B * kF1, "u3") : nullptr;
  const float* U2 = given ? draws(u2, B * kC2 * kP2, "u2") : nullptr;
  const float* U1 = given ? draws(u1, B * kC1 * kP1, "u1") : nullptr;
  TORCH_CHECK(!rule.draws() || given || gen.has_value(),
              "wide_lenet: a stochastic rule needs its generator (or its numbers)");

  float* P = params.data_ptr<float>();
  float* G = grad.data_ptr<float>();
  const Views w = views(P);
  const int64_t* ix = idx.data_ptr<int64_t>();
  const int64_t* lab = y.data_ptr<int64_t>();
  const int64_t N = x.size(0);
  std::vector<const float*> img(B);
  for (int64_t b = 0; b < B; ++b) {
    TORCH_CHECK(ix[b] >= 0 && ix[b] < N, "wide_lenet: index out of range");
    img[b] = x.data_ptr<float>() + ix[b] * kP1;
  }

  // The batch goes through the whole network kChunk images at a time (forward, loss, backward,
  // the weight gradients summed over chunks), so what the backward keeps of the forward is a
  // chunk's, in L2/L3, whatever the batch size; the update comes after the last chunk (and not
  // at all when the batch's loss is not finite). Each image's loss gradient is 1/B of the batch
  // mean's, as one pass over the batch gives it.
  const int64_t C = std::min(kChunk, B);
  const int64_t n_draws = B * (kF2 + kF1 + kC2 * kP2 + kC1 * kP1);
  const int64_t need = tile_floats(T) + (res != kNone ? C * (kC1 * kP1 + kC2 * kP2) : 0) +
                       (rule.draws() && !given ? n_draws + 64 : 0) +
                       C * kC1 * kQ1 + C * (kIn1 + kF1 * 2 + kIn2 + kF2 * 2 + kIn3 + 400) +
                       2 * C * nc + 64 * 16;
  ws.reset(need);
  float* scratch = ws.take(tile_floats(T));
  float* r1 = res != kNone ? ws.take(C * kC1 * kP1) : nullptr;
  float* r2 = res != kNone ? ws.take(C * kC2 * kP2) : nullptr;
  float* pool1 = ws.take(C * kC1 * kQ1 + 16);  // + 16: im2col2 reads rows as vectors
  float* a3 = ws.take(kIn1 * C);
  float* z3 = ws.take(kF1 * C);
  float* a4 = ws.take(kIn2 * C);
  float* z4 = ws.take(kF2 * C);
  float* a5 = ws.take(kIn3 * C);
  float* lg = ws.take(C * nc);
  float* dl = ws.take(C * nc);
  float* d4 = ws.take(kF2 * C);
  float* d3 = ws.take(kF1 * C);
  float* da3 = ws.take(400 * C);
  if (rule.draws() && !given) {  // the solo backward's draws: fc2's, fc1's, conv2's, conv1's
    float* u = ws.take(n_draws);
    float* at[4] = {u, u + B * kF2, u + B * (kF2 + kF1), u + B * (kF2 + kF1 + kC2 * kP2)};
    const int64_t sizes[4] = {B * kF2, B * kF1, B * kC2 * kP2, B * kC1 * kP1};
    for (int i = 0; i < 4; ++i) {  // one torch.rand / torch.randn call each
      if (rule.kind == kJam) fill_uniform(*gen, at[i], sizes[i]);
      else fill_normal(*gen, at[i], sizes[i]);
    }
    U4 = at[0];
    U3 = at[1];
    U2 = at[2];
    U1 = at[3];
  }

  float* g1 = G + kO1;
  float* g2 = G + kO2;
  float* xp = scratch;  // the backward's tile buffers
  float* dz1 = xp + kPad;
  float* dp1 = dz1 + kC1 * T * kP1 * 2;
  float* col2 = dp1 + kC1 * T * kQ1;
  float* dz2 = col2 + kK2 * ld2(T);
  float* dcol2 = dz2 + kC2 * T * kP2 * 2;
  static thread_local Conv1Grad c1grad;
  c1grad.zero();
  float loss_sum = 0.0f;
  int64_t correct = 0;
  const float gy = -1.0f / static_cast<float>(B);  // nll_loss_backward: -1 / total_weight
  for (int64_t c0 = 0; c0 < B; c0 += C) {
    const int64_t nb = std::min(C, B - c0);
    const float first = c0 == 0 ? 0.0f : 1.0f;  // GEMM beta: the first chunk overwrites
    const float* const* im = img.data() + c0;

    // forward
    conv_forward(w, im, nb, T, fwd, &rule, res, res, r1, r2, pool1, a3, scratch);
    mark(-1);
    fc_forward(w, nb, nc, fwd, a3, z3, a4, z4, a5, lg);
    mark(7);

    // cross-entropy (mean over the batch) and its gradient, as log_softmax + nll_loss give them
    for (int64_t b = 0; b < nb; ++b) {
      const float* o = lg + b * nc;
      float mx = o[0];
      int64_t arg = 0;
      for (int64_t c = 1; c < nc; ++c) {
        if (o[c] > mx || (std::isnan(o[c]) && !std::isnan(mx))) {
          mx = o[c];
          arg = c;
        }
      }
      float s = 0.0f;
      for (int64_t c = 0; c < nc; ++c) s += std::exp(o[c] - mx);
      const float lse = std::log(s);
      const int64_t t = lab[ix[c0 + b]];
      TORCH_CHECK(t >= 0 && t < nc, "wide_lenet: label out of range");
      loss_sum += -((o[t] - mx) - lse);
      correct += arg == t;
      float* d = dl + b * nc;
      for (int64_t c = 0; c < nc; ++c) {
        const float ls = (o[c] - mx) - lse;
        d[c] = (c == t ? gy : 0.0f) - std::exp(ls) * gy;
      }
    }

    // backward of the fc layers
    const float* U4c = U4 ? U4 + c0 * kF2 : nullptr;
    const float* U3c = U3 ? U3 + c0 * kF1 : nullptr;
    gemm(true, true, nc, kIn3, nb, dl, nc, a5, nb, first, G + kO5, kIn3);
    gemm(true, true, kF2, nb, nc, w.f3, kIn3, dl, nc, 0.0f, d4, nb);
    fc_rule(rule, d4, res == kOutput ? a5 : z4, U4c, kF2, nb);
    gemm(false, true, kF2, kIn2, nb, d4, nb, a4, nb, first, G + kO4, kIn2);
    gemm(true, false, kF1, nb, kF2, w.f2, kIn2, d4, nb, 0.0f, d3, nb);
    fc_rule(rule, d3, res == kOutput ? a4 : z3, U3c, kF1, nb);
    gemm(false, true, kF1, kIn1, nb, d3, nb, a3, nb, first, G + kO3, kIn1);
    gemm(true, false, 400, nb, kF1, w.f1, kIn1, d3, nb, 0.0f, da3, nb);
    mark(8);

    // backward of the convolutions, tile after tile (the weight gradients summed over tiles)
    for (int64_t b0 = 0; b0 < nb; b0 += T) {
      const int64_t n = std::min(T, nb - b0);
      const float beta = c0 == 0 && b0 == 0 ? 0.0f : 1.0f;
      // pool2's backward from da3[c * 25 + q][b]
      for (int64_t c = 0; c < kC2; ++c) {
        for (int64_t t = 0; t < n; ++t) {
          float* out = dz2 + (c * n + t) * kP2;
          for (int64_t i = 0; i < 10; ++i) {
            for (int64_t j = 0; j < 10; ++j) {
              out[i * 10 + j] = da3[(c * kQ2 + (i / 2) * 5 + j / 2) * nb + b0 + t] / 4.0f;
            }
          }
        }
      }
      mark(9);
      const float* r2t = res == kByte ? reinterpret_cast<const float*>(
                                            reinterpret_cast<const uint8_t*>(r2) + b0 * kC2 * kP2)
                         : r2 ? r2 + b0 * kC2 * kP2 : nullptr;
      conv_rule(rule, dz2, r2t, U2, kC2, n, kP2, c0 + b0);
      mark(10);
      im2col2(pool1 + b0 * kC1 * kQ1, n, col2);
      mark(4);
      gemm(false, true, kC2, kK2, n * kP2, dz2, n * kP2, col2, ld2(n), beta, g2, kK2);
      mark(11);
      gemm(true, false, 150, n * kP2, kC2, w.w2, kK2, dz2, n * kP2, 0.0f, dcol2, n * kP2);
      mark(12);
      col2im2(dcol2, n, dp1);
      mark(13);
      for (int64_t t = 0; t < n; ++t) {  // one image at a time: its dz1 (6 x 784) stays in L1
        for (int64_t c = 0; c < kC1; ++c) {
          float* d = dz1 + c * kP1;
          unpool28(dp1 + (c * n + t) * kQ1, d);
          const int64_t at = b0 * kC1 * kP1 + (c * n + t) * kP1;
          const float* uu = U1 ? U1 + ((c0 + b0 + t) * kC1 + c) * kP1 : nullptr;
          if (res == kByte) {
            apply_rule_bytes(rule, d, reinterpret_cast<const uint8_t*>(r1) + at, uu, kP1);
          } else {
            apply_rule(rule, d, r1 ? r1 + at : nullptr, uu, 1, kP1);
          }
        }
        mark(15);
        pad_image(im[b0 + t], xp);
        c1grad.add(dz1, kP1, xp);
        mark(16);
      }
    }
  }
  const float loss = loss_sum / static_cast<float>(B);
  if (!std::isfinite(loss)) return {static_cast<double>(loss), correct};

  c1grad.reduce(g1);
  mark(-1);
  // SGD, as torch.optim.SGD's single-tensor step: d = g + wd p; buf = m buf + d (first step:
  // d); p += (-lr) buf, the last one fused (ATen's vectorised add with alpha is an FMA)
  const int64_t np = params.numel();
  const float alpha = static_cast<float>(-lr), wd = static_cast<float>(weight_decay);
  const float m = static_cast<float>(momentum);
  if (weight_decay != 0.0) {
    for (int64_t i = 0; i < np; ++i) G[i] = std::fma(P[i], wd, G[i]);
  }
  if (use_mom) {
    float* M = mom.data_ptr<float>();
    if (mom_init) std::memcpy(M, G, np * sizeof(float));
    else for (int64_t i = 0; i < np; ++i) M[i] = M[i] * m + G[i];
    for (int64_t i = 0; i < np; ++i) P[i] = std::fma(M[i], alpha, P[i]);
  } else {
    for (int64_t i = 0; i < np; ++i) P[i] = std::fma(G[i], alpha, P[i]);
  }
  mark(17);
  return {static_cast<double>(loss), correct};
}

std::vector<double> profile(bool on) {
  std::vector<double> out(g_acc, g_acc + 32);
  std::fill(g_acc, g_acc + 32, 0.0);
  g_prof = on;
  return out;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, module) {
  module.def("forward", &forward, "logits of images x[start, start + n) for one member");
  module.def("rand", &rand_like_torch, "n numbers as torch.rand(n, generator=gen) draws them");
  module.def("randn", &randn_like_torch, "n numbers as torch.randn(n, generator=gen) makes them");
  module.def("profile", &profile, "phase seconds so far (reset); on: keep timing");
  module.def("step", &step, "one SGD step of one member: (loss, correct)");
}
