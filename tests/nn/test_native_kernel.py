"""The native CPU LSTM and GRU kernels (mir_jax.kernels) against the pure-JAX fused layers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mir_jax import kernels
from mir_jax.kernels import gru as native_gru
from mir_jax.kernels import lstm as native_lstm
from mir_jax.nn import cells, fused, recurrent

pytestmark = pytest.mark.skipif(not kernels.available(), reason='native kernels did not build')


LAYERS = {'lstm': (native_lstm.lstm_layer, fused.lstm_layer),
          'gru': (native_gru.gru_layer, fused.gru_layer)}


def _case(batch, steps, inputs, hidden, seed=0, cell='lstm'):
  key = jax.random.PRNGKey(seed)
  p = cells.get_cell(cell).init(key, inputs, hidden)
  p = {k: v + 0.1 * jax.random.normal(jax.random.fold_in(key, i), v.shape)
       for i, (k, v) in enumerate(sorted(p.items()))}
  xs = jax.random.normal(jax.random.fold_in(key, 10), (steps, batch, inputs))
  carry = tuple(0.5 * jax.random.normal(jax.random.fold_in(key, 11 + i), (batch, hidden))
                for i in range(2))
  if cell == 'gru':
    carry = carry[0]
  lengths = jax.random.randint(jax.random.fold_in(key, 13), (batch,), 1, steps + 1)
  valid = (jnp.arange(steps)[:, None] < lengths[None, :])[..., None]
  return p, xs, carry, valid


def _loss(layer, valid):
  def loss(p, xs, carry):
    ys, final = layer(p, xs, carry, valid)
    w = jnp.cos(jnp.arange(ys.size, dtype=ys.dtype)).reshape(ys.shape)
    h, c = final if isinstance(final, tuple) else (final, final)
    return jnp.sum(ys * w) + jnp.sum(h ** 2) + jnp.sum(jnp.sin(c))
  return loss


# Row-block tails (the kernel blocks 8 rows with AVX-512, 3 without: batches 1, 7
# and 11 leave 1, 7 and 3 rows; 7 and 11 leave 1 and 2 of 3) and the 32-column
# panels (LSTM 4H = 20, 148, 256; GRU 3H = 15, 111, 192; backward H = 5, 37, 64:
# one padded panel, a partial last panel, exact panels), and the input-projection
# chunks of ceil(64 / B) steps (batch 1: one chunk of all 9 steps; batch 7: chunks
# of 10 and a partial 5; batch 11: two whole chunks of 6).
@pytest.mark.parametrize('batch,steps,inputs,hidden', [
    (1, 9, 3, 5), (7, 15, 16, 37), (11, 12, 5, 64)])
@pytest.mark.parametrize('masked', [False, True])
@pytest.mark.parametrize('cell', ['lstm', 'gru'])
def test_kernel_equals_fused_layer(cell, batch, steps, inputs, hidden, masked):
  p, xs, carry, valid = _case(batch, steps, inputs, hidden, cell=cell)
  native, reference = LAYERS[cell]
  valid = valid if masked else None
  ours = native(p, xs, carry, valid)
  ref = reference(p, xs, carry, valid)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-6, rtol=1e-5), ours, ref)
  if masked:  # outputs are exactly zero past each length
    np.testing.assert_array_equal(np.asarray(ours[0])[~np.asarray(valid[..., 0])], 0.0)
  g_ours = jax.grad(_loss(native, valid), (0, 1, 2))(p, xs, carry)
  g_ref = jax.grad(_loss(reference, valid), (0, 1, 2))(p, xs, carry)
  scale = max(float(jnp.max(jnp.abs(a))) for a in jax.tree.leaves(g_ref))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5 * scale, rtol=1e-4),
               g_ours, g_ref)


def test_auto_takes_the_kernels_for_float32_only():
  p, xs, _, _ = _case(2, 5, 3, 4)
  x = jnp.swapaxes(xs, 0, 1)
  jaxpr = lambda fn, p=p: str(jax.make_jaxpr(fn)(p, x))
  assert 'mir_jax_lstm_forward' in jaxpr(lambda p, x: recurrent.rnn('lstm', p, x)[0])
  p_gru = cells.get_cell('gru').init(jax.random.PRNGKey(1), 3, 4)
  assert 'mir_jax_gru_forward' in jaxpr(lambda p, x: recurrent.rnn('gru', p, x)[0], p_gru)
  rnn_tanh = cells.get_cell('rnn_tanh').init(jax.random.PRNGKey(1), 3, 4)
  assert 'mir_jax' not in jaxpr(lambda p, x: recurrent.rnn('rnn_tanh', p, x)[0], rnn_tanh)
  bf16 = jaxpr(lambda p, x: recurrent.rnn('lstm', p, x, compute_dtype=jnp.bfloat16)[0])
  assert 'mir_jax_lstm' not in bf16
  # The bf16 layer falls back to the fused layer and still runs.
  out = recurrent.rnn('lstm', p, x, compute_dtype=jnp.bfloat16)[0]
  assert out.dtype == jnp.bfloat16 and out.shape == (2, 5, 4)


def test_native_says_why_it_cannot_run():
  key = jax.random.PRNGKey(0)
  x = jnp.ones((2, 5, 3))
  with pytest.raises(ValueError, match="impl='native'.*LSTMs and GRUs only.*rnn_relu"):
    recurrent.rnn('rnn_relu', cells.get_cell('rnn_relu').init(key, 3, 4), x, impl='native')
  with pytest.raises(ValueError, match='float32 only.*bfloat16'):
    recurrent.rnn('lstm', cells.lstm_init(key, 3, 4), x, impl='native',
                  compute_dtype=jnp.bfloat16)


def test_vmap_over_the_kernel_equals_a_loop():
  p, xs, carry, valid = _case(3, 6, 4, 5)
  ps = jax.tree.map(lambda a: jnp.stack([a, -a]), p)
  ys = jax.vmap(lambda q: native_lstm.lstm_layer(q, xs, carry, valid)[0])(ps)
  for d in range(2):
    q = jax.tree.map(lambda a, d=d: a[d], ps)
    np.testing.assert_allclose(ys[d], native_lstm.lstm_layer(q, xs, carry, valid)[0], atol=1e-6)


def test_switched_off_by_environment(monkeypatch):
  monkeypatch.setenv('MIR_JAX_NATIVE', '0')
  kernels.available.cache_clear()
  try:
    assert not kernels.available()
    p, xs, _, _ = _case(2, 5, 3, 4)
    jaxpr = str(jax.make_jaxpr(lambda p, x: recurrent.rnn('lstm', p, x)[0])(
        p, jnp.swapaxes(xs, 0, 1)))
    assert 'mir_jax_lstm' not in jaxpr
  finally:
    monkeypatch.delenv('MIR_JAX_NATIVE')
    kernels.available.cache_clear()
    assert kernels.available()  # registering the targets again is harmless
