"""Fast paths: whole LSTM and GRU layers with hand-written backward passes.

Autodiff of a scan accumulates the weight gradients inside the backward loop,
one small (H, B) @ (B, G*H) product per step and per weight. Here the backward
scan carries only ``dh @ W_hhᵀ`` (and the LSTM's ``dc``) and emits each step's
gate pre-activation gradients; the gradients of ``W_hh``, ``W_ih``, the bias and
the inputs then become large matrix products over chunks of steps, each
computed right after the loop has produced it (:func:`_backward`).

The forward loop is latency-bound (a (B, H) @ (H, G*H) product per step), so
the input projection can ride along inside it for free on small shapes
(``in_loop=True``) instead of being one large product before the loop plus
per-gate copies (``in_loop=False``); which is faster depends on the shape and
the backend, and is chosen by :func:`mir_jax.nn.recurrent.rnn`.

Inputs are time-major, (T, B, I); ``valid`` is None or a (T, B, 1) boolean
mask with the layers' semantics (carry frozen and output zero past each
length). The generic autodiff scan in :mod:`mir_jax.nn.recurrent` is the
reference that the tests hold these to.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

_sigmoid = jax.nn.sigmoid


def _split(x, n):
  return tuple(jnp.split(x, n, axis=-1))


def _keep(valid, new, old):
  return new if valid is None else jnp.where(valid, new, old)


def _hoisted_gates(w_ih, b, xs, num_gates):
  return _split(xs @ w_ih + b, num_gates)


BACKWARD_CHUNK = 50


def _chunk_grads(w_ih, x, h_prev, d_rec, d_in):
  """The gradients of everything outside the recurrence, for a span of steps.

  ``d_rec`` is the gradient of the recurrent pre-activation (``h @ W_hh``),
  ``d_in`` that of the input pre-activation (``x @ W_ih + b``); for the LSTM
  they are the same array. Returns ``((dW_ih, db, dW_hh, d_rec summed), dx)``.
  """
  rows = x.shape[0] * x.shape[1]
  d_rec2 = d_rec.reshape(rows, -1)
  d_in2 = d_rec2 if d_in is None else d_in.reshape(rows, -1)
  sums = (x.reshape(rows, -1).T @ d_in2, jnp.sum(d_in2, axis=0),
          h_prev.reshape(rows, -1).T @ d_rec2, jnp.sum(d_rec2, axis=0))
  return sums, (d_in2 @ w_ih.T).reshape(x.shape)


def _backward(step, carry, seq, xs, h_prev, w_ih, unroll, to_d_in=None):
  """The backward recurrence over reversed time, and the weight gradients.

  ``step(carry, seq_t) -> (carry, (d_rec_t, extra_t))``; ``to_d_in(d_rec,
  extra)`` gives the input pre-activation's gradient for a span of steps
  (None: it equals ``d_rec``, as for the LSTM). Time runs in chunks of
  ``BACKWARD_CHUNK`` steps (the first ``T mod BACKWARD_CHUNK`` steps last):
  each iteration runs one chunk's loop and the large products (weight and input
  gradients) of the chunk after it in time, whose arrays are still in cache
  (3% faster than one set of products after the whole loop on the 2-core CPU).
  Returns ``(carry, (dW_ih, db, dW_hh, d_rec summed), dxs)``.
  """
  steps = xs.shape[0]
  size = min(BACKWARD_CHUNK, steps)
  num, rest = divmod(steps, size)
  arrays = (seq, xs, h_prev)
  head_seq, head_xs, head_h = jax.tree.map(lambda a: a[:rest], arrays)
  body_seq, body_xs, body_h = jax.tree.map(
      lambda a: a[rest:].reshape((num, size) + a.shape[1:]), arrays)

  def run(carry, seq_chunk):
    carry, (d_rec, extra) = jax.lax.scan(step, carry, seq_chunk, reverse=True, unroll=unroll)
    return carry, (d_rec, None if to_d_in is None else to_d_in(d_rec, extra))

  def finish(pending):  # a chunk's (d_rec, d_in, x, h_prev) -> (sums, dx)
    d_rec, d_in, x, h = pending
    return _chunk_grads(w_ih, x, h, d_rec, d_in)

  last = jax.tree.map(lambda a: a[-1], (body_seq, body_xs, body_h))
  carry, pending = run(carry, last[0])
  pending = pending + last[1:]

  def outer(state, inputs):
    carry, sums, pending = state
    seq_chunk, x_chunk, h_chunk = inputs
    carry, grads = run(carry, seq_chunk)
    more, dx = finish(pending)
    sums = jax.tree.map(jnp.add, sums, more)
    return (carry, sums, grads + (x_chunk, h_chunk)), dx

  # partial sums in at least fp32, so chunking loses nothing under bf16
  shapes = jax.eval_shape(lambda p: finish(p)[0], pending)
  sums = jax.tree.map(
      lambda a: jnp.zeros(a.shape, jnp.promote_types(a.dtype, jnp.float32)), shapes)
  rest_chunks = jax.tree.map(lambda a: a[:-1], (body_seq, body_xs, body_h))
  (carry, sums, pending), dx_body = jax.lax.scan(
      outer, (carry, sums, pending), rest_chunks, reverse=True)
  more, dx_first = finish(pending)
  sums = jax.tree.map(jnp.add, sums, more)
  # dx_body[j] belongs to chunk j + 1: each iteration finishes the one after it
  dxs = [dx_first[None], dx_body]
  dxs = jnp.concatenate(dxs, axis=0).reshape((num * size,) + xs.shape[1:])
  if rest:
    carry, (d_rec, d_in) = run(carry, head_seq)
    more, dx_head = _chunk_grads(w_ih, head_xs, head_h, d_rec, d_in)
    sums = jax.tree.map(jnp.add, sums, more)
    dxs = jnp.concatenate([dx_head, dxs], axis=0)
  sums = jax.tree.map(lambda a, like: a.astype(like.dtype), sums, shapes)
  return carry, sums, dxs


# ----------------------------------------------------------------------------- LSTM

def _lstm_forward(params, xs, carry, valid, unroll, in_loop, save):
  w_ih, b, w_hh = params['w_ih'], params['b'], params['w_hh']
  seq = xs if in_loop else _hoisted_gates(w_ih, b, xs, 4)

  def body(carry, inputs):
    h, c = carry
    x_t, m = inputs
    if in_loop:
      zi, zf, zg, zo = _split(x_t @ w_ih + h @ w_hh + b, 4)
    else:
      ri, rf, rg, ro = _split(h @ w_hh, 4)
      zi, zf, zg, zo = (x_t[0] + ri, x_t[1] + rf, x_t[2] + rg, x_t[3] + ro)
    i, f, g, o = _sigmoid(zi), _sigmoid(zf), jnp.tanh(zg), _sigmoid(zo)
    c_new = f * c + i * g
    tc = jnp.tanh(c_new)
    h_new = o * tc
    y = _keep(m, h_new, jnp.zeros_like(h_new))
    new_carry = (_keep(m, h_new, h), _keep(m, c_new, c))
    if save:  # one packed array for the gates: fewer loop outputs, faster
      return new_carry, (y, (jnp.concatenate([i, f, g, o], -1), tc, h, c))
    return new_carry, y
  return jax.lax.scan(body, carry, (seq, valid), unroll=unroll)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def lstm_layer(params, xs, carry, valid, unroll=1, in_loop=True):
  """An LSTM layer over time-major ``xs`` (T, B, I).

  Args:
    params: ``{'w_ih', 'w_hh', 'b'}`` as :func:`mir_jax.nn.cells.lstm_init`.
    carry: ``(h, c)``, each (B, H).
    valid: None or (T, B, 1) bool.

  Returns:
    ``(ys (T, B, H), (h_T, c_T))``.
  """
  final, ys = _lstm_forward(params, xs, carry, valid, unroll, in_loop, save=False)
  return ys, final


def _lstm_fwd(params, xs, carry, valid, unroll, in_loop):
  final, (ys, res) = _lstm_forward(params, xs, carry, valid, unroll, in_loop, save=True)
  return (ys, final), (params, xs, valid, res)


def _lstm_bwd(unroll, in_loop, saved, cotangents):
  del in_loop
  params, xs, valid, (acts, tcs, h_prev, c_prev) = saved
  dys, (dh_final, dc_final) = cotangents
  w_t = params['w_hh'].T

  def body(carry, inputs):
    dh, dc = carry
    dy, act, tc, cp, m = inputs
    i, f, g, o = _split(act, 4)
    dh_new = dy + dh
    dc_in = dc
    if m is not None:
      dh_new = jnp.where(m, dh_new, 0)
      dc_in = jnp.where(m, dc, 0)
    dc_new = dc_in + dh_new * o * (1 - tc * tc)
    da = jnp.concatenate([
        dc_new * g * i * (1 - i),
        dc_new * cp * f * (1 - f),
        dc_new * i * (1 - g * g),
        dh_new * tc * o * (1 - o),
    ], axis=-1)
    dh_prev = da @ w_t
    dc_prev = dc_new * f
    if m is not None:  # frozen steps pass the carry's gradient straight through
      dh_prev = dh_prev + jnp.where(m, 0, dh)
      dc_prev = dc_prev + jnp.where(m, 0, dc)
    return (dh_prev, dc_prev), (da, None)

  (dh0, dc0), (dw_ih, db, dw_hh, _), dxs = _backward(
      body, (dh_final, dc_final), (dys, acts, tcs, c_prev, valid), xs, h_prev,
      params['w_ih'], unroll)
  dparams = {'w_ih': dw_ih, 'b': db, 'w_hh': dw_hh}
  return dparams, dxs, (dh0, dc0), None


lstm_layer.defvjp(_lstm_fwd, _lstm_bwd)


# ----------------------------------------------------------------------------- GRU

def _gru_forward(params, xs, h, valid, unroll, in_loop, save):
  w_ih, b, w_hh, b_hh = params['w_ih'], params['b'], params['w_hh'], params['b_hh']
  seq = xs if in_loop else _hoisted_gates(w_ih, b, xs, 3)

  def body(h, inputs):
    x_t, m = inputs
    xr, xz, xn = _split(x_t @ w_ih + b, 3) if in_loop else x_t
    rr, rz, rn = _split(h @ w_hh + b_hh, 3)
    r = _sigmoid(xr + rr)
    z = _sigmoid(xz + rz)
    n = jnp.tanh(xn + r * rn)
    h_new = (1 - z) * n + z * h
    y = _keep(m, h_new, jnp.zeros_like(h_new))
    if save:
      return _keep(m, h_new, h), (y, (jnp.concatenate([r, z, n, rn], -1), h))
    return _keep(m, h_new, h), y
  return jax.lax.scan(body, h, (seq, valid), unroll=unroll)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def gru_layer(params, xs, h0, valid, unroll=1, in_loop=True):
  """A GRU layer over time-major ``xs`` (T, B, I): ``(ys (T, B, H), h_T)``."""
  final, ys = _gru_forward(params, xs, h0, valid, unroll, in_loop, save=False)
  return ys, final


def _gru_fwd(params, xs, h0, valid, unroll, in_loop):
  final, (ys, res) = _gru_forward(params, xs, h0, valid, unroll, in_loop, save=True)
  return (ys, final), (params, xs, valid, res)


def _gru_bwd(unroll, in_loop, saved, cotangents):
  del in_loop
  params, xs, valid, (acts, h_prev) = saved
  dys, dh_final = cotangents
  w_t = params['w_hh'].T

  def body(dh, inputs):
    dy, act, hp, m = inputs
    r, z, n, rn = _split(act, 4)
    dh_new = dy + dh
    if m is not None:
      dh_new = jnp.where(m, dh_new, 0)
    da_n = dh_new * (1 - z) * (1 - n * n)
    da_z = dh_new * (hp - n) * z * (1 - z)
    da_r = da_n * rn * r * (1 - r)
    d_rec = jnp.concatenate([da_r, da_z, da_n * r], axis=-1)  # d(h @ W_hh + b_hh)
    dh_prev = d_rec @ w_t + dh_new * z
    if m is not None:
      dh_prev = dh_prev + jnp.where(m, 0, dh)
    return dh_prev, (d_rec, da_n)

  hidden = h_prev.shape[-1]
  to_d_in = lambda d_rec, da_n: jnp.concatenate([d_rec[..., :2 * hidden], da_n], -1)
  dh0, (dw_ih, db, dw_hh, db_hh), dxs = _backward(
      body, dh_final, (dys, acts, h_prev, valid), xs, h_prev, params['w_ih'],
      unroll, to_d_in)
  dparams = {'w_ih': dw_ih, 'b': db, 'w_hh': dw_hh, 'b_hh': db_hh}
  return dparams, dxs, dh0, None


gru_layer.defvjp(_gru_fwd, _gru_bwd)
