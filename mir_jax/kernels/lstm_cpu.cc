// The LSTM recurrence on the CPU as XLA FFI handlers (float32).
//
// XLA's CPU backend runs the per-step recurrent product (B, H) @ (H, 4H) at a
// fraction of its GEMM rate (it is latency-bound, and each op of the step is a
// separate loop over memory). Here one handler runs the whole loop: per step,
// a register-blocked product straight into the gate buffer, then the gate math
// in the same pass over each row. The input projection runs in the loop too
// (b + x_t @ W_ih + h @ W_hh), a chunk of steps at a time (ProjectionChunk): a
// (T, B, 4H) array of projected inputs would be a fresh allocation per call,
// and its page faults cost more than the product.
// The weight and input gradients stay in XLA, one large GEMM each.
//
// Layout: time-major. xs (T, B, I); W_ih (I, 4H), W_hh (H, 4H) row-major, b
// (4H), gate order i, f, g, o; mask (T, B), 1 = valid (carry frozen, output 0
// where 0). The pure-JAX layer in mir_jax/nn/fused.py is the reference.

#include <cstdint>
#include <cstring>
#include <vector>

#include "common.h"

namespace ffi = xla::ffi;
using namespace mir_jax_kernels;  // NOLINT

namespace {

template <bool kSave>
ffi::Error Forward(F32 xs, F32 w_ih, F32 bias,
                   F32 w, F32 h0,
                   F32 c0, F32 mask,
                   Out ys, Out h_out,
                   Out c_out, Out acts,
                   Out tcs, Out h_prev,
                   Out c_prev) {
  const auto dims = xs.dimensions();
  const int64_t T = dims[0], B = dims[1], I = dims[2], H = h0.dimensions()[1], G = 4 * H;
  if (auto e = CheckShapes(T, B, H, 4, dims, I, w.dimensions()); e.failure()) return e;
  if (auto e = CheckInputWeights(I, G, w_ih, {&bias}); e.failure()) return e;
  float* h = h_out->typed_data();
  float* c = c_out->typed_data();
  std::memcpy(h, h0.typed_data(), sizeof(float) * B * H);
  std::memcpy(c, c0.typed_data(), sizeof(float) * B * H);
  Packed wih, whh;
  wih.Pack(I, G, kPanel, w_ih.typed_data(), G, 1);
  whh.Pack(H, G, kPanel, w.typed_data(), G, 1);
  const int ldz = whh.padded();
  const int64_t chunk = ProjectionChunk(T, B, ldz);
  std::vector<float> zc(chunk * B * ldz);
  for (int64_t t = 0; t < T; ++t) {
    if (t % chunk == 0)
      Project(std::min(chunk, T - t) * B, xs.typed_data() + t * B * I, I, wih, bias.typed_data(),
              G, zc.data(), ldz);
    float* z = zc.data() + (t % chunk) * B * ldz;
    if (kSave) {
      std::memcpy(h_prev->typed_data() + t * B * H, h, sizeof(float) * B * H);
      std::memcpy(c_prev->typed_data() + t * B * H, c, sizeof(float) * B * H);
    }
    GemmAcc(B, h, H, whh, z, ldz);
    float* y = ys->typed_data() + t * B * H;
    for (int64_t b = 0; b < B; ++b) {
      const float* __restrict zb = z + b * ldz;
      float* __restrict hb = h + b * H;
      float* __restrict cb = c + b * H;
      float* __restrict yb = y + b * H;
      float* __restrict ab = kSave ? acts->typed_data() + (t * B + b) * G : nullptr;
      float* __restrict tb = kSave ? tcs->typed_data() + (t * B + b) * H : nullptr;
      const bool valid = mask.typed_data()[t * B + b] != 0.0f;
#pragma GCC ivdep
      for (int64_t j = 0; j < H; ++j) {
        const float i = Sigmoid(zb[j]), f = Sigmoid(zb[H + j]);
        const float g = Tanh(zb[2 * H + j]), o = Sigmoid(zb[3 * H + j]);
        const float c_new = f * cb[j] + i * g;
        const float tc = Tanh(c_new);
        const float h_new = o * tc;
        if (kSave) {
          ab[j] = i, ab[H + j] = f, ab[2 * H + j] = g, ab[3 * H + j] = o;
          tb[j] = tc;
        }
        yb[j] = valid ? h_new : 0.0f;
        hb[j] = valid ? h_new : hb[j];
        cb[j] = valid ? c_new : cb[j];
      }
    }
  }
  return ffi::Error::Success();
}

ffi::Error ForwardInfer(F32 xs, F32 w_ih,
                        F32 bias, F32 w,
                        F32 h0, F32 c0,
                        F32 mask, Out ys,
                        Out h_out, Out c_out) {
  return Forward<false>(xs, w_ih, bias, w, h0, c0, mask, ys, h_out, c_out, ys, ys, ys, ys);
}

ffi::Error ForwardTrain(F32 xs, F32 w_ih,
                        F32 bias, F32 w,
                        F32 h0, F32 c0,
                        F32 mask, Out ys,
                        Out h_out, Out c_out,
                        Out acts, Out tcs,
                        Out h_prev, Out c_prev) {
  return Forward<true>(xs, w_ih, bias, w, h0, c0, mask, ys, h_out, c_out, acts, tcs, h_prev, c_prev);
}

// The backward recurrence: carries (dh, dc) back through time and emits each
// step's gate pre-activation gradient da (T, B, 4H); the weight and input
// gradients are products of da outside (in XLA). das may be the acts buffer
// (the binding aliases them): each element of da is written only after the
// activations at the same place are read.
ffi::Error Backward(F32 dys, F32 dh_last,
                    F32 dc_last, F32 acts,
                    F32 tcs, F32 c_prev,
                    F32 mask, F32 w,
                    Out das, Out dh_out,
                    Out dc_out) {
  const auto dims = acts.dimensions();
  const int64_t T = dims[0], B = dims[1], G = dims[2], H = G / 4;
  if (auto e = CheckShapes(T, B, H, 4, dims, G, w.dimensions()); e.failure()) return e;
  Packed wt;  // W_hh^T (4H, H)
  wt.Pack(G, H, kPanel, w.typed_data(), 1, G);
  const int ldn = wt.padded();
  float* dh = dh_out->typed_data();
  float* dc = dc_out->typed_data();
  std::memcpy(dh, dh_last.typed_data(), sizeof(float) * B * H);
  std::memcpy(dc, dc_last.typed_data(), sizeof(float) * B * H);
  std::vector<float> next(B * ldn);
  std::vector<char> valid(B);
  for (int64_t t = T - 1; t >= 0; --t) {
    float* da = das->typed_data() + t * B * G;
    for (int64_t b = 0; b < B; ++b) {
      valid[b] = mask.typed_data()[t * B + b] != 0.0f;
      const float* ab = acts.typed_data() + (t * B + b) * G;  // may alias dab
      const float* __restrict tb = tcs.typed_data() + (t * B + b) * H;
      const float* __restrict cp = c_prev.typed_data() + (t * B + b) * H;
      const float* __restrict dy = dys.typed_data() + (t * B + b) * H;
      float* dab = da + b * G;
      float* __restrict dhb = dh + b * H;
      float* __restrict dcb = dc + b * H;
      if (!valid[b]) {  // a frozen step: zero gate gradients, the carry's passes through
        std::memset(dab, 0, sizeof(float) * G);
        continue;
      }
#pragma GCC ivdep
      for (int64_t j = 0; j < H; ++j) {
        const float i = ab[j], f = ab[H + j], g = ab[2 * H + j], o = ab[3 * H + j];
        const float tc = tb[j];
        const float dh_new = dy[j] + dhb[j];
        const float dc_new = dcb[j] + dh_new * o * (1.0f - tc * tc);
        dab[j] = dc_new * g * i * (1.0f - i);
        dab[H + j] = dc_new * cp[j] * f * (1.0f - f);
        dab[2 * H + j] = dc_new * i * (1.0f - g * g);
        dab[3 * H + j] = dh_new * tc * o * (1.0f - o);
        dcb[j] = dc_new * f;
      }
    }
    std::memset(next.data(), 0, sizeof(float) * B * ldn);
    GemmAcc(B, da, G, wt, next.data(), ldn);
    for (int64_t b = 0; b < B; ++b)
      if (valid[b]) std::memcpy(dh + b * H, next.data() + b * ldn, sizeof(float) * H);
  }
  return ffi::Error::Success();
}

}  // namespace

// Arguments and results in the order of the functions above.
XLA_FFI_DEFINE_HANDLER_SYMBOL(MirLstmForward, ForwardInfer,
                              ffi::Ffi::Bind().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>()
                                  .Arg<F32>().Arg<F32>().Arg<F32>().Ret<F32>().Ret<F32>()
                                  .Ret<F32>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(MirLstmForwardTrain, ForwardTrain,
                              ffi::Ffi::Bind().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>()
                                  .Arg<F32>().Arg<F32>().Arg<F32>().Ret<F32>().Ret<F32>()
                                  .Ret<F32>().Ret<F32>().Ret<F32>().Ret<F32>().Ret<F32>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(MirLstmBackward, Backward,
                              ffi::Ffi::Bind().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>()
                                  .Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>().Ret<F32>()
                                  .Ret<F32>().Ret<F32>());
