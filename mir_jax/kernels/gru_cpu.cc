// The GRU recurrence on the CPU as XLA FFI handlers (float32); see
// lstm_cpu.cc for why the loop is native.
//
// Layout: time-major. xs (T, B, I); W_ih (I, 3H), W_hh (H, 3H) row-major,
// b and b_hh (3H), gate order r, z, n (PyTorch's convention:
// n = tanh(x_n + r * (h @ W_hn + b_hn))); mask (T, B), 1 = valid. The
// pure-JAX layer in mir_jax/nn/fused.py is the reference.

#include <cstdint>
#include <cstring>
#include <vector>

#include "common.h"

namespace ffi = xla::ffi;
using namespace mir_jax_kernels;  // NOLINT

namespace {

template <bool kSave>
ffi::Error Forward(F32 xs, F32 w_ih, F32 bias, F32 w, F32 b_hh, F32 h0, F32 mask, Out ys,
                   Out h_out, Out acts, Out rns, Out h_prev) {
  const auto dims = xs.dimensions();
  const int64_t T = dims[0], B = dims[1], I = dims[2], H = h0.dimensions()[1], G = 3 * H;
  if (auto e = CheckShapes(T, B, H, 3, dims, I, w.dimensions()); e.failure()) return e;
  if (auto e = CheckInputWeights(I, G, w_ih, {&bias, &b_hh}); e.failure()) return e;
  float* h = h_out->typed_data();
  std::memcpy(h, h0.typed_data(), sizeof(float) * B * H);
  Packed wih, whh;
  wih.Pack(I, G, kPanel, w_ih.typed_data(), G, 1);
  whh.Pack(H, G, kPanel, w.typed_data(), G, 1);
  const int ld = whh.padded();
  const int64_t chunk = ProjectionChunk(T, B, ld);
  std::vector<float> zxc(chunk * B * ld), zh(B * ld);  // x @ W_ih + b (a chunk), h @ W_hh + b_hh
  for (int64_t t = 0; t < T; ++t) {
    if (t % chunk == 0)
      Project(std::min(chunk, T - t) * B, xs.typed_data() + t * B * I, I, wih, bias.typed_data(),
              G, zxc.data(), ld);
    const float* zx = zxc.data() + (t % chunk) * B * ld;
    if (kSave) std::memcpy(h_prev->typed_data() + t * B * H, h, sizeof(float) * B * H);
    Project(B, h, H, whh, b_hh.typed_data(), G, zh.data(), ld);
    float* y = ys->typed_data() + t * B * H;
    for (int64_t b = 0; b < B; ++b) {
      const float* __restrict gx = zx + b * ld;
      const float* __restrict gh = zh.data() + b * ld;
      float* __restrict hb = h + b * H;
      float* __restrict yb = y + b * H;
      float* __restrict ab = kSave ? acts->typed_data() + (t * B + b) * G : nullptr;
      float* __restrict rb = kSave ? rns->typed_data() + (t * B + b) * H : nullptr;
      const bool valid = mask.typed_data()[t * B + b] != 0.0f;
#pragma GCC ivdep
      for (int64_t j = 0; j < H; ++j) {
        const float r = Sigmoid(gx[j] + gh[j]);
        const float z = Sigmoid(gx[H + j] + gh[H + j]);
        const float rn = gh[2 * H + j];
        const float n = Tanh(gx[2 * H + j] + r * rn);
        const float h_new = (1.0f - z) * n + z * hb[j];
        if (kSave) ab[j] = r, ab[H + j] = z, ab[2 * H + j] = n, rb[j] = rn;
        yb[j] = valid ? h_new : 0.0f;
        hb[j] = valid ? h_new : hb[j];
      }
    }
  }
  return ffi::Error::Success();
}

ffi::Error ForwardInfer(F32 xs, F32 w_ih, F32 bias, F32 w, F32 b_hh, F32 h0, F32 mask, Out ys,
                        Out h_out) {
  return Forward<false>(xs, w_ih, bias, w, b_hh, h0, mask, ys, h_out, ys, ys, ys);
}

ffi::Error ForwardTrain(F32 xs, F32 w_ih, F32 bias, F32 w, F32 b_hh, F32 h0, F32 mask, Out ys,
                        Out h_out, Out acts, Out rns, Out h_prev) {
  return Forward<true>(xs, w_ih, bias, w, b_hh, h0, mask, ys, h_out, acts, rns, h_prev);
}

// Emits d_rec (T, B, 3H), the gradient of h @ W_hh + b_hh, and d_in, that of
// x @ W_ih + b (they differ in the n gate, where r scales the recurrent part).
// d_in may be the acts buffer (the binding aliases them): each element of d_in
// is written only after the activation at the same place is read, and z is
// kept (as dh_new * z) for the carry's update after the step's product.
ffi::Error Backward(F32 dys, F32 dh_last, F32 acts, F32 rns, F32 h_prev, F32 mask, F32 w,
                    Out d_rec, Out d_in, Out dh_out) {
  const auto dims = acts.dimensions();
  const int64_t T = dims[0], B = dims[1], H = dims[2] / 3, G = 3 * H;
  if (auto e = CheckShapes(T, B, H, 3, dims, G, w.dimensions()); e.failure()) return e;
  Packed wt;  // W_hh^T (3H, H)
  wt.Pack(G, H, kPanel, w.typed_data(), 1, G);
  const int ldn = wt.padded();
  float* dh = dh_out->typed_data();
  std::memcpy(dh, dh_last.typed_data(), sizeof(float) * B * H);
  std::vector<float> next(B * ldn), dz(B * H);
  std::vector<char> valid(B);
  for (int64_t t = T - 1; t >= 0; --t) {
    float* dr = d_rec->typed_data() + t * B * G;
    float* di = d_in->typed_data() + t * B * G;
    for (int64_t b = 0; b < B; ++b) {
      valid[b] = mask.typed_data()[t * B + b] != 0.0f;
      float* __restrict drb = dr + b * G;
      float* dib = di + b * G;
      if (!valid[b]) {  // a frozen step: zero gate gradients, the carry's passes through
        std::memset(drb, 0, sizeof(float) * G);
        std::memset(dib, 0, sizeof(float) * G);
        continue;
      }
      const float* ab = acts.typed_data() + (t * B + b) * G;  // may alias dib
      const float* __restrict rnb = rns.typed_data() + (t * B + b) * H;
      const float* __restrict hp = h_prev.typed_data() + (t * B + b) * H;
      const float* __restrict dy = dys.typed_data() + (t * B + b) * H;
      const float* __restrict dhb = dh + b * H;
      float* __restrict dzb = dz.data() + b * H;
#pragma GCC ivdep
      for (int64_t j = 0; j < H; ++j) {
        const float r = ab[j], z = ab[H + j], n = ab[2 * H + j], rn = rnb[j];
        const float d = dy[j] + dhb[j];
        const float da_n = d * (1.0f - z) * (1.0f - n * n);
        const float da_z = d * (hp[j] - n) * z * (1.0f - z);
        const float da_r = da_n * rn * r * (1.0f - r);
        drb[j] = da_r, drb[H + j] = da_z, drb[2 * H + j] = da_n * r;
        dib[j] = da_r, dib[H + j] = da_z, dib[2 * H + j] = da_n;
        dzb[j] = d * z;
      }
    }
    std::memset(next.data(), 0, sizeof(float) * B * ldn);
    GemmAcc(B, dr, G, wt, next.data(), ldn);
    for (int64_t b = 0; b < B; ++b) {
      if (!valid[b]) continue;
      const float* __restrict nb = next.data() + b * ldn;
      const float* __restrict dzb = dz.data() + b * H;
      float* __restrict dhb = dh + b * H;
#pragma GCC ivdep
      for (int64_t j = 0; j < H; ++j) dhb[j] = nb[j] + dzb[j];
    }
  }
  return ffi::Error::Success();
}

}  // namespace

// Arguments and results in the order of the functions above (acts: r, z, n per
// step; rns: h @ W_hn + b_hn).
XLA_FFI_DEFINE_HANDLER_SYMBOL(MirGruForward, ForwardInfer,
                              ffi::Ffi::Bind().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>()
                                  .Arg<F32>().Arg<F32>().Arg<F32>().Ret<F32>().Ret<F32>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(MirGruForwardTrain, ForwardTrain,
                              ffi::Ffi::Bind().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>()
                                  .Arg<F32>().Arg<F32>().Arg<F32>().Ret<F32>().Ret<F32>()
                                  .Ret<F32>().Ret<F32>().Ret<F32>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(MirGruBackward, Backward,
                              ffi::Ffi::Bind().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>()
                                  .Arg<F32>().Arg<F32>().Arg<F32>().Ret<F32>().Ret<F32>()
                                  .Ret<F32>());
