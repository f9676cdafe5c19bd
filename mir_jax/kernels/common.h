// Shared by the recurrent kernels: a small register-blocked product for the
// per-step (B, K) @ (K, N) with packed weights, and vectorisable activations.

#ifndef MIR_JAX_KERNELS_COMMON_H_
#define MIR_JAX_KERNELS_COMMON_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace mir_jax_kernels {

using F32 = ffi::Buffer<ffi::F32>;
using Out = ffi::ResultBuffer<ffi::F32>;

// 16 floats; GCC lowers it to one zmm register with AVX-512, two ymm with AVX2.
typedef float v16 __attribute__((vector_size(64), aligned(4)));

inline v16 load(const float* p) { return *reinterpret_cast<const v16*>(p); }
inline void store(float* p, v16 v) { *reinterpret_cast<v16*>(p) = v; }

// Register blocks of rows x (16 * NV) columns of accumulators: 8 x 32 (16 zmm)
// with AVX-512's 32 registers, 3 x 32 (12 ymm) with AVX2's 16.
#if defined(__AVX512F__)
constexpr int kRegsPerV16 = 1, kAccumulatorRegs = 16;
#else
constexpr int kRegsPerV16 = 2, kAccumulatorRegs = 12;
#endif
template <int NV> constexpr int kRows = kAccumulatorRegs / (NV * kRegsPerV16);

// A weight matrix (K, N) in panels of `width` columns, each panel's K rows
// contiguous (zero-padded past N), so the product's inner loop streams
// memory in order instead of striding by N (a 4 KiB stride maps every row
// to the same L1 set).
struct Packed {
  int K = 0, N = 0, width = 0, panels = 0;
  std::vector<float> data;
  // element (k, n) of the source is src[k * ks + n * ns]
  void Pack(int k_rows, int n_cols, int panel_width, const float* src, int64_t ks, int64_t ns) {
    K = k_rows, N = n_cols, width = panel_width, panels = (N + width - 1) / width;
    data.assign(static_cast<size_t>(panels) * K * width, 0.0f);
    for (int p = 0; p < panels; ++p)
      for (int k = 0; k < K; ++k)
        for (int j = 0; j < width && p * width + j < N; ++j)
          data[(static_cast<size_t>(p) * K + k) * width + j] = src[k * ks + (p * width + j) * ns];
  }
  int padded() const { return panels * width; }
};

// C[r, 0:16 NV] += A[r, :] @ panel for R rows. With few rows, even and odd k
// accumulate separately (where the registers allow): R * NV chains are too few
// to cover the FMA latency.
template <int R, int NV>
inline void Block(int K, const float* A, int lda, const float* panel, float* C, int ldc) {
  constexpr int S = 2 * R * NV * kRegsPerV16 <= kAccumulatorRegs ? 2 : 1;
  v16 acc[S][R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) {
      acc[0][r][v] = load(C + r * ldc + 16 * v);
      if (S == 2) acc[S - 1][r][v] = (v16){};
    }
  int k = 0;
  for (; k + S <= K; k += S)
    for (int s = 0; s < S; ++s) {
      v16 w[NV];
      for (int v = 0; v < NV; ++v) w[v] = load(panel + ((k + s) * NV + v) * 16);
      for (int r = 0; r < R; ++r) {
        const v16 a = A[r * lda + k + s] - (v16){};
        for (int v = 0; v < NV; ++v) acc[s][r][v] += a * w[v];
      }
    }
  for (; k < K; ++k)
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < NV; ++v)
        acc[0][r][v] += (A[r * lda + k] - (v16){}) * load(panel + (k * NV + v) * 16);
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) {
      if (S == 2) acc[0][r][v] += acc[S - 1][r][v];
      store(C + r * ldc + 16 * v, acc[0][r][v]);
    }
}

template <int R, int NV>
inline void Tail(int rows, int K, const float* A, int lda, const float* panel, float* C, int ldc) {
  if constexpr (R > 0) {
    if (rows == R) return Block<R, NV>(K, A, lda, panel, C, ldc);
    Tail<R - 1, NV>(rows, K, A, lda, panel, C, ldc);
  }
}

template <int NV>
void GemmPanels(int B, const float* A, int lda, const Packed& M, float* C, int ldc) {
  constexpr int R = kRows<NV>;
  for (int p = 0; p < M.panels; ++p) {
    const float* panel = M.data.data() + static_cast<size_t>(p) * M.K * M.width;
    float* c = C + p * M.width;
    int r = 0;
    for (; r + R <= B; r += R) Block<R, NV>(M.K, A + r * lda, lda, panel, c + r * ldc, ldc);
    Tail<R - 1, NV>(B - r, M.K, A + r * lda, lda, panel, c + r * ldc, ldc);
  }
}

// C (B, ldc) += A (B, K) @ M for the packed M (K, N); ldc is at least
// M.padded() (the padding columns receive zeros). Panels outside, rows
// inside: each panel is read from memory once and then from cache. 32-column
// panels (8-row blocks) beat 64-column ones (4-row blocks) on every benchmark
// shape, batch 4 included (AVX-512, one core).
constexpr int kPanel = 32;
inline void GemmAcc(int B, const float* A, int lda, const Packed& M, float* C, int ldc) {
  GemmPanels<kPanel / 16>(B, A, lda, M, C, ldc);
}

// The input projection b + x_t @ W_ih runs for a chunk of steps at once, as one
// product over chunk * B rows: each packed W_ih panel is then read once per
// chunk instead of once per step (at batch 4 per core the per-step products
// stream both weight matrices from L3 for a few register blocks each). The
// chunk's gate buffer stays under 256 KiB, so it is still in L2 when its step
// adds h @ W_hh.
constexpr int64_t kChunkRows = 64, kChunkBytes = 256 << 10;
inline int64_t ProjectionChunk(int64_t T, int64_t B, int ld) {
  const int64_t by_rows = (kChunkRows + B - 1) / B;
  const int64_t by_bytes = kChunkBytes / (B * ld * static_cast<int64_t>(sizeof(float)));
  return std::max<int64_t>(1, std::min({T, by_rows, by_bytes}));
}

// rows x ld buffer z (row r at z + r * ld) = bias (first n entries of each row)
// + A (rows, K) @ M, for the packed M.
inline void Project(int64_t rows, const float* A, int lda, const Packed& M, const float* bias,
                    int64_t n, float* z, int ld) {
  for (int64_t r = 0; r < rows; ++r) std::memcpy(z + r * ld, bias, sizeof(float) * n);
  GemmAcc(static_cast<int>(rows), A, lda, M, z, ld);
}

// Eigen's (and so XLA's) rational float tanh, without the branch Eigen takes
// below |x| = 4e-4 (there p/q is x to 1.3e-7 relative), so loops over it
// vectorise. The sigmoid is 0.5 + 0.5 tanh(x / 2): no exp, so it vectorises too.
inline float Tanh(float x) {
  const float kClamp = 7.90531110763549805f;
  x = x < -kClamp ? -kClamp : (x > kClamp ? kClamp : x);
  const float x2 = x * x;
  float p = -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 + -8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  p = p * x;
  float q = 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  return p / q;
}

inline float Sigmoid(float x) { return 0.5f + 0.5f * Tanh(0.5f * x); }

// The shapes every handler checks: a time-major sequence (T, B, seq_last) and
// a recurrent weight (H, gates * H).
inline ffi::Error CheckShapes(int64_t T, int64_t B, int64_t H, int64_t gates,
                              const ffi::AnyBuffer::Dimensions& seq, int64_t seq_last,
                              const ffi::AnyBuffer::Dimensions& w) {
  if (seq.size() != 3 || w.size() != 2 || w[0] != H || w[1] != gates * H || seq[0] != T ||
      seq[1] != B || seq[2] != seq_last)
    return ffi::Error::InvalidArgument("mir_jax recurrent kernel: inconsistent shapes");
  return ffi::Error::Success();
}

// The input weights (I, gates * H) and each bias (gates * H).
inline ffi::Error CheckInputWeights(int64_t I, int64_t G, const F32& w_ih,
                                    std::initializer_list<const F32*> biases) {
  const auto d = w_ih.dimensions();
  bool ok = d.size() == 2 && d[0] == I && d[1] == G;
  for (const F32* b : biases) ok = ok && b->element_count() == static_cast<size_t>(G);
  if (!ok) return ffi::Error::InvalidArgument("mir_jax recurrent kernel: inconsistent input weights");
  return ffi::Error::Success();
}

}  // namespace mir_jax_kernels

#endif  // MIR_JAX_KERNELS_COMMON_H_
