"""Recurrent cells as pure functions over parameter pytrees.

Every cell has the same parameter layout, chosen so that one matrix product
serves all gates and so that PyTorch weights port without reshuffling:

  ``w_ih``: (input_dim, G * hidden)   input weights, Glorot-uniform per gate
  ``w_hh``: (hidden, G * hidden)      recurrent weights, orthogonal per gate
  ``b``:    (G * hidden,)             bias added to the input projection
  ``b_hh``: (G * hidden,)             GRU only: recurrent bias (sits inside r * (.))

G is the number of gates: 1 for the Elman RNN, 3 for the GRU (r, z, n) and 4 for
the LSTM (i, f, g, o) -- PyTorch's gate orders. The LSTM forget-gate bias starts
at 1 (Jozefowicz et al., 2015) so that early in training the cell remembers.

A cell exposes two step functions:

* ``step(params, carry, x_t) -> (carry, h_t)`` on a raw input ``x_t`` (B, I);
* ``step_projected(params, carry, gates_t) -> (carry, h_t)`` where ``gates_t`` is
  a tuple of G arrays (B, H) already holding ``x_t @ w_ih + b``. The layers in
  :mod:`mir_jax.nn.recurrent` hoist that projection out of the scan (one large
  matrix product for all time steps) and feed the scan one array per gate,
  because slicing a fused (T, B, G*H) array inside the loop is far slower on CPU.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

Params = dict[str, jax.Array]
Carry = Any


def _glorot_uniform(key, fan_in: int, fan_out: int, num_gates: int, dtype):
  """Glorot-uniform input weights, one (fan_in, fan_out) block per gate."""
  init = jax.nn.initializers.glorot_uniform()
  keys = jax.random.split(key, num_gates)
  return jnp.concatenate([init(k, (fan_in, fan_out), dtype) for k in keys], axis=1)


def _orthogonal(key, hidden: int, num_gates: int, dtype):
  """Orthogonal recurrent weights per gate (Saxe et al., 2014)."""
  init = jax.nn.initializers.orthogonal()
  keys = jax.random.split(key, num_gates)
  return jnp.concatenate([init(k, (hidden, hidden), dtype) for k in keys], axis=1)


def _split(x: jax.Array, num_gates: int) -> tuple[jax.Array, ...]:
  return tuple(jnp.split(x, num_gates, axis=-1))


# ----------------------------------------------------------------------------- LSTM

def lstm_init(key, input_dim: int, hidden_dim: int, dtype=jnp.float32) -> Params:
  """LSTM params: Glorot inputs, orthogonal recurrence, zero bias but forget = 1."""
  k_ih, k_hh = jax.random.split(key)
  b = jnp.zeros((4 * hidden_dim,), dtype).at[hidden_dim:2 * hidden_dim].set(1.0)
  return {
      'w_ih': _glorot_uniform(k_ih, input_dim, hidden_dim, 4, dtype),
      'w_hh': _orthogonal(k_hh, hidden_dim, 4, dtype),
      'b': b,
  }


def lstm_initial_carry(batch: int, hidden_dim: int, dtype=jnp.float32):
  """(h, c), both zeros."""
  z = jnp.zeros((batch, hidden_dim), dtype)
  return (z, z)


def lstm_step_projected(params: Params, carry, gates_t):
  h, c = carry
  ri, rf, rg, ro = _split(h @ params['w_hh'], 4)
  xi, xf, xg, xo = gates_t
  i = jax.nn.sigmoid(xi + ri)
  f = jax.nn.sigmoid(xf + rf)
  g = jnp.tanh(xg + rg)
  o = jax.nn.sigmoid(xo + ro)
  c = f * c + i * g
  h = o * jnp.tanh(c)
  return (h, c), h


# ----------------------------------------------------------------------------- GRU

def gru_init(key, input_dim: int, hidden_dim: int, dtype=jnp.float32) -> Params:
  """GRU params (PyTorch's formulation: the reset gate multiplies W_hn h + b_hn)."""
  k_ih, k_hh = jax.random.split(key)
  return {
      'w_ih': _glorot_uniform(k_ih, input_dim, hidden_dim, 3, dtype),
      'w_hh': _orthogonal(k_hh, hidden_dim, 3, dtype),
      'b': jnp.zeros((3 * hidden_dim,), dtype),
      'b_hh': jnp.zeros((3 * hidden_dim,), dtype),
  }


def gru_initial_carry(batch: int, hidden_dim: int, dtype=jnp.float32):
  return jnp.zeros((batch, hidden_dim), dtype)


def gru_step_projected(params: Params, carry, gates_t):
  h = carry
  rr, rz, rn = _split(h @ params['w_hh'] + params['b_hh'], 3)
  xr, xz, xn = gates_t
  r = jax.nn.sigmoid(xr + rr)
  z = jax.nn.sigmoid(xz + rz)
  n = jnp.tanh(xn + r * rn)
  h = (1.0 - z) * n + z * h
  return h, h


# ----------------------------------------------------------------------------- Elman RNN

def rnn_init(key, input_dim: int, hidden_dim: int, dtype=jnp.float32) -> Params:
  """Elman RNN params: h_t = f_h(x_t W_ih + h_{t-1} W_hh + b)."""
  k_ih, k_hh = jax.random.split(key)
  return {
      'w_ih': _glorot_uniform(k_ih, input_dim, hidden_dim, 1, dtype),
      'w_hh': _orthogonal(k_hh, hidden_dim, 1, dtype),
      'b': jnp.zeros((hidden_dim,), dtype),
  }


def _rnn_step_projected(activation, params: Params, carry, gates_t):
  (x,) = gates_t
  h = activation(x + carry @ params['w_hh'])
  return h, h


# ----------------------------------------------------------------------------- registry

class Cell(NamedTuple):
  """Everything a layer needs to know about a cell."""
  name: str
  num_gates: int
  init: Callable[..., Params]
  initial_carry: Callable[..., Carry]
  step_projected: Callable[[Params, Carry, tuple], tuple[Carry, jax.Array]]

  def project(self, params: Params, x: jax.Array) -> tuple[jax.Array, ...]:
    """``x @ w_ih + b`` split per gate; works on (B, I) or (T, B, I)."""
    return _split(x @ params['w_ih'] + params['b'], self.num_gates)

  def step(self, params: Params, carry, x_t: jax.Array):
    """One time step on a raw input ``x_t`` of shape (B, input_dim)."""
    return self.step_projected(params, carry, self.project(params, x_t))

  def hidden_size(self, params: Params) -> int:
    return params['w_hh'].shape[0]

  def carry_output(self, carry) -> jax.Array:
    """The hidden state h inside a carry."""
    return carry[0] if self.name == 'lstm' else carry


CELLS: dict[str, Cell] = {
    'lstm': Cell('lstm', 4, lstm_init, lstm_initial_carry, lstm_step_projected),
    'gru': Cell('gru', 3, gru_init, gru_initial_carry, gru_step_projected),
    'rnn_tanh': Cell('rnn_tanh', 1, rnn_init, gru_initial_carry,
                     functools.partial(_rnn_step_projected, jnp.tanh)),
    'rnn_relu': Cell('rnn_relu', 1, rnn_init, gru_initial_carry,
                     functools.partial(_rnn_step_projected, jax.nn.relu)),
}


def get_cell(cell: str | Cell) -> Cell:
  """Looks a cell up by name ('lstm', 'gru', 'rnn_tanh', 'rnn_relu')."""
  if isinstance(cell, Cell):
    return cell
  try:
    return CELLS[cell]
  except KeyError:
    raise ValueError(f'unknown cell {cell!r}; choose one of {sorted(CELLS)}') from None


# Convenience: raw-input step functions with the documented signature.
lstm_step = CELLS['lstm'].step
gru_step = CELLS['gru'].step
rnn_tanh_step = CELLS['rnn_tanh'].step
rnn_relu_step = CELLS['rnn_relu'].step
