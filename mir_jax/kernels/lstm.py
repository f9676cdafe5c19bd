"""The LSTM layer on the native CPU kernel (float32), with its backward pass.

Same contract as :func:`mir_jax.nn.fused.lstm_layer` (time-major ``xs``
(T, B, I), ``valid`` None or (T, B, 1) bool), which is the reference it is
tested against. The loops run in C++ (``lstm_cpu.cc``), the forward one with
the input projection inside it; the weight and input gradients stay in XLA,
one GEMM each over all T * B rows after the backward loop.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def mask(valid, steps, batch):
  """The kernels' (T, B) float mask, 1 = valid, from the layers' (T, B, 1) bool or None."""
  if valid is None:
    return jnp.ones((steps, batch), jnp.float32)
  return valid[..., 0].astype(jnp.float32)


def call(name, outs, *args, aliases=None):
  """Calls FFI target ``name`` (vmapped by a loop over the batch of calls).

  ``aliases`` maps argument to result indices that share a buffer: the result
  is written over a saved activation that is dead after the call, so XLA
  need not allocate (and the kernel page-fault in) a fresh one.
  """
  return jax.ffi.ffi_call(name, outs, vmap_method='sequential',
                          input_output_aliases=aliases)(*args)


def _forward(params, xs, carry, valid, save):
  steps, batch, _ = xs.shape
  h0, c0 = carry
  hidden = h0.shape[-1]
  like = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.float32)
  outs = [like(steps, batch, hidden), like(batch, hidden), like(batch, hidden)]
  if save:
    outs += [like(steps, batch, 4 * hidden)] + [like(steps, batch, hidden)] * 3
  name = 'mir_jax_lstm_forward_train' if save else 'mir_jax_lstm_forward'
  return call(name, tuple(outs), xs, params['w_ih'], params['b'], params['w_hh'], h0, c0,
               mask(valid, steps, batch))


@jax.custom_vjp
def lstm_layer(params, xs, carry, valid):
  """``(ys (T, B, H), (h_T, c_T))``; float32 params, inputs and carry."""
  ys, h, c = _forward(params, xs, carry, valid, save=False)
  return ys, (h, c)


def forward_train(params, xs, carry, valid):
  """The forward loop (C++) that saves what the backward pass needs: ``(outputs, saved)``."""
  ys, h, c, acts, tcs, h_prev, c_prev = _forward(params, xs, carry, valid, save=True)
  return (ys, (h, c)), (params, xs, valid, acts, tcs, h_prev, c_prev)


def backward_loop(saved, cotangents):
  """The backward recurrence (C++): ``(das (T, B, 4H), dh0, dc0)``, gate gradients per step."""
  params, xs, valid, acts, tcs, _, c_prev = saved
  dys, (dh, dc) = cotangents
  steps, batch, _ = xs.shape
  like = lambda a: jax.ShapeDtypeStruct(a.shape, jnp.float32)
  return call('mir_jax_lstm_backward', (like(acts), like(dh), like(dc)),
              dys, dh, dc, acts, tcs, c_prev, mask(valid, steps, batch),
              params['w_hh'], aliases={3: 0})  # das over acts


def gradients(saved, das):
  """``(dparams, dxs)`` from the gate gradients: one XLA product each over all T * B rows."""
  params, xs, _, _, _, h_prev, _ = saved
  steps, batch, inputs = xs.shape
  rows = steps * batch
  da2 = das.reshape(rows, -1)
  dparams = {
      'w_ih': xs.reshape(rows, inputs).T @ da2,
      'b': jnp.sum(da2, axis=0),
      'w_hh': h_prev.reshape(rows, -1).T @ da2,
  }
  return dparams, (da2 @ params['w_ih'].T).reshape(xs.shape)


def _bwd(saved, cotangents):
  das, dh0, dc0 = backward_loop(saved, cotangents)
  dparams, dxs = gradients(saved, das)
  return dparams, dxs, (dh0, dc0), None


lstm_layer.defvjp(forward_train, _bwd)
