"""The GRU layer on the native CPU kernel (float32), with its backward pass.

Same contract as :func:`mir_jax.nn.fused.gru_layer`, its reference in the
tests; see :mod:`mir_jax.kernels.lstm` for the split between the C++ loops
and the XLA products.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mir_jax.kernels.lstm import call, mask


def _forward(params, xs, h0, valid, save):
  steps, batch, _ = xs.shape
  hidden = h0.shape[-1]
  like = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.float32)
  outs = [like(steps, batch, hidden), like(batch, hidden)]
  if save:
    outs += [like(steps, batch, 3 * hidden)] + [like(steps, batch, hidden)] * 2
  name = 'mir_jax_gru_forward_train' if save else 'mir_jax_gru_forward'
  return call(name, tuple(outs), xs, params['w_ih'], params['b'], params['w_hh'],
               params['b_hh'], h0, mask(valid, steps, batch))


@jax.custom_vjp
def gru_layer(params, xs, h0, valid):
  """``(ys (T, B, H), h_T)``; float32 params, inputs and carry."""
  return tuple(_forward(params, xs, h0, valid, save=False))


def forward_train(params, xs, h0, valid):
  """The forward loop (C++) that saves what the backward pass needs: ``(outputs, saved)``."""
  ys, h, acts, rns, h_prev = _forward(params, xs, h0, valid, save=True)
  return (ys, h), (params, xs, valid, acts, rns, h_prev)


def backward_loop(saved, cotangents):
  """The backward recurrence (C++): ``(d_rec, d_in (T, B, 3H), dh0)``.

  ``d_rec`` is the gradient of the recurrent pre-activations (``h @ W_hh + b_hh``),
  ``d_in`` of the input ones; they differ in the candidate gate, where the reset
  gate multiplies the recurrent part.
  """
  params, xs, valid, acts, rns, h_prev = saved
  dys, dh = cotangents
  steps, batch, _ = xs.shape
  gates = jax.ShapeDtypeStruct(acts.shape, jnp.float32)
  return call('mir_jax_gru_backward',
              (gates, gates, jax.ShapeDtypeStruct(dh.shape, jnp.float32)),
              dys, dh, acts, rns, h_prev, mask(valid, steps, batch),
              params['w_hh'], aliases={2: 1})  # d_in over acts


def gradients(saved, d_rec, d_in):
  """``(dparams, dxs)``: one XLA product each over all T * B rows."""
  params, xs, _, _, _, h_prev = saved
  steps, batch, inputs = xs.shape
  rows = steps * batch
  d_rec2, d_in2 = d_rec.reshape(rows, -1), d_in.reshape(rows, -1)
  dparams = {
      'w_ih': xs.reshape(rows, inputs).T @ d_in2,
      'b': jnp.sum(d_in2, axis=0),
      'w_hh': h_prev.reshape(rows, -1).T @ d_rec2,
      'b_hh': jnp.sum(d_rec2, axis=0),
  }
  return dparams, (d_in2 @ params['w_ih'].T).reshape(xs.shape)


def _bwd(saved, cotangents):
  d_rec, d_in, dh0 = backward_loop(saved, cotangents)
  dparams, dxs = gradients(saved, d_rec, d_in)
  return dparams, dxs, dh0, None


gru_layer.defvjp(forward_train, _bwd)
