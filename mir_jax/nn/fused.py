"""Fast paths: LSTM and GRU scans with hand-written backward passes.

Autodiff of a scan accumulates the recurrent weight gradient inside the
backward loop, one small (H, B) @ (B, G*H) product per step. Here the backward
scan carries only ``dh @ W_hhᵀ`` (and the LSTM's ``dc``); it emits each step's
gate pre-activation gradients, and the weight gradient becomes one large
product over all steps after the loop, where BLAS is efficient.

Inputs are time-major and already projected, one (T, B, H) array per gate (see
:mod:`mir_jax.nn.cells`); ``valid`` is None or a (T, B, 1) boolean mask with
the layers' semantics (carry frozen and output zero past each length). The
generic autodiff scan in :mod:`mir_jax.nn.recurrent` is the reference that the
tests hold these to.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

_sigmoid = jax.nn.sigmoid


def _split4(x):
  return tuple(jnp.split(x, 4, axis=-1))


def _split3(x):
  return tuple(jnp.split(x, 3, axis=-1))


def _keep(valid, new, old):
  return new if valid is None else jnp.where(valid, new, old)


# ----------------------------------------------------------------------------- LSTM

def _lstm_forward(w_hh, gates, carry, valid, unroll, save):
  def body(carry, inputs):
    h, c = carry
    (xi, xf, xg, xo), m = inputs
    ri, rf, rg, ro = _split4(h @ w_hh)
    i = _sigmoid(xi + ri)
    f = _sigmoid(xf + rf)
    g = jnp.tanh(xg + rg)
    o = _sigmoid(xo + ro)
    c_new = f * c + i * g
    tc = jnp.tanh(c_new)
    h_new = o * tc
    y = _keep(m, h_new, jnp.zeros_like(h_new))
    new_carry = (_keep(m, h_new, h), _keep(m, c_new, c))
    if save:
      return new_carry, (y, (i, f, g, o, tc, h, c))
    return new_carry, y
  return jax.lax.scan(body, carry, (gates, valid), unroll=unroll)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def lstm_scan(w_hh, gates, carry, valid, unroll=1):
  """LSTM over projected gates: returns ``(ys (T, B, H), (h_T, c_T))``."""
  final, ys = _lstm_forward(w_hh, gates, carry, valid, unroll, save=False)
  return ys, final


def _lstm_fwd(w_hh, gates, carry, valid, unroll):
  final, (ys, res) = _lstm_forward(w_hh, gates, carry, valid, unroll, save=True)
  return (ys, final), (w_hh, valid, res)


def _lstm_bwd(unroll, saved, cotangents):
  w_hh, valid, (i, f, g, o, tc, h_prev, c_prev) = saved
  dys, (dh_final, dc_final) = cotangents
  w_t = w_hh.T

  def body(carry, inputs):
    dh, dc = carry
    dy, i, f, g, o, tc, cp, m = inputs
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
    return (dh_prev, dc_prev), da

  (dh0, dc0), das = jax.lax.scan(
      body, (dh_final, dc_final), (dys, i, f, g, o, tc, c_prev, valid),
      reverse=True, unroll=unroll)
  dw = jnp.einsum('tbh,tbg->hg', h_prev, das)
  return dw, _split4(das), (dh0, dc0), None


lstm_scan.defvjp(_lstm_fwd, _lstm_bwd)


# ----------------------------------------------------------------------------- GRU

def _gru_forward(w_hh, b_hh, gates, h, valid, unroll, save):
  def body(h, inputs):
    (xr, xz, xn), m = inputs
    rr, rz, rn = _split3(h @ w_hh + b_hh)
    r = _sigmoid(xr + rr)
    z = _sigmoid(xz + rz)
    n = jnp.tanh(xn + r * rn)
    h_new = (1 - z) * n + z * h
    y = _keep(m, h_new, jnp.zeros_like(h_new))
    if save:
      return _keep(m, h_new, h), (y, (r, z, n, rn, h))
    return _keep(m, h_new, h), y
  return jax.lax.scan(body, h, (gates, valid), unroll=unroll)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def gru_scan(w_hh, b_hh, gates, h0, valid, unroll=1):
  """GRU over projected gates: returns ``(ys (T, B, H), h_T)``."""
  final, ys = _gru_forward(w_hh, b_hh, gates, h0, valid, unroll, save=False)
  return ys, final


def _gru_fwd(w_hh, b_hh, gates, h0, valid, unroll):
  final, (ys, res) = _gru_forward(w_hh, b_hh, gates, h0, valid, unroll, save=True)
  return (ys, final), (w_hh, valid, res)


def _gru_bwd(unroll, saved, cotangents):
  w_hh, valid, (r, z, n, rn, h_prev) = saved
  dys, dh_final = cotangents
  w_t = w_hh.T

  def body(dh, inputs):
    dy, r, z, n, rn, hp, m = inputs
    dh_new = dy + dh
    if m is not None:
      dh_new = jnp.where(m, dh_new, 0)
    da_n = dh_new * (1 - z) * (1 - n * n)
    da_z = dh_new * (hp - n) * z * (1 - z)
    da_r = da_n * rn * r * (1 - r)
    d_rec = jnp.concatenate([da_r, da_z, da_n * r], axis=-1)  # d(h @ W + b_hh)
    dh_prev = d_rec @ w_t + dh_new * z
    if m is not None:
      dh_prev = dh_prev + jnp.where(m, 0, dh)
    return dh_prev, (d_rec, da_n)

  dh0, (d_rec, da_n) = jax.lax.scan(
      body, dh_final, (dys, r, z, n, rn, h_prev, valid), reverse=True, unroll=unroll)
  dw = jnp.einsum('tbh,tbg->hg', h_prev, d_rec)
  db = jnp.sum(d_rec, axis=(0, 1))
  da_r, da_z, _ = _split3(d_rec)
  return dw, db, (da_r, da_z, da_n), dh0, None


gru_scan.defvjp(_gru_fwd, _gru_bwd)
