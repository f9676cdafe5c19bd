"""The recurrent layers against a plain per-example Python loop over time."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mir_jax import kernels
from mir_jax.nn import cells, recurrent

jax.config.update('jax_enable_x64', False)

CELL_NAMES = ['lstm', 'gru', 'rnn_tanh', 'rnn_relu']
B, T, F, H = 3, 6, 4, 5
LENGTHS = np.array([6, 3, 1])


def _textbook_step(name, p, carry, x):
  """The cell equations written out independently of mir_jax.nn.cells."""
  sig = jax.nn.sigmoid
  if name == 'lstm':
    h, c = carry
    z = x @ p['w_ih'] + h @ p['w_hh'] + p['b']
    i, f, g, o = z[:H], z[H:2 * H], z[2 * H:3 * H], z[3 * H:]
    c = sig(f) * c + sig(i) * jnp.tanh(g)
    h = sig(o) * jnp.tanh(c)
    return (h, c), h
  if name == 'gru':
    h = carry
    xi = x @ p['w_ih'] + p['b']
    hh = h @ p['w_hh'] + p['b_hh']
    r = sig(xi[:H] + hh[:H])
    z = sig(xi[H:2 * H] + hh[H:2 * H])
    n = jnp.tanh(xi[2 * H:] + r * hh[2 * H:])
    h = (1 - z) * n + z * h
    return h, h
  act = jnp.tanh if name == 'rnn_tanh' else jax.nn.relu
  h = act(x @ p['w_ih'] + carry @ p['w_hh'] + p['b'])
  return h, h


def _zero_carry(name):
  z = jnp.zeros((H,))
  return (z, z) if name == 'lstm' else z


def reference_layer(name, p, x, lengths, reverse=False):
  """Runs each example alone over exactly its valid frames, one step at a time."""
  outs, finals = [], []
  for b in range(x.shape[0]):
    n = int(lengths[b])
    carry = _zero_carry(name)
    out = [jnp.zeros((H,))] * x.shape[1]
    order = range(n - 1, -1, -1) if reverse else range(n)
    for t in order:
      carry, h = _textbook_step(name, p, carry, x[b, t])
      out[t] = h
    outs.append(jnp.stack(out))
    finals.append(carry)
  final = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *finals)
  return jnp.stack(outs), final


def _perturb_bias(p, key):
  # Non-zero biases so that a bias bug cannot hide behind zero init.
  return {k: (v + 0.1 * jax.random.normal(jax.random.fold_in(key, i), v.shape)
              if k.startswith('b') else v) for i, (k, v) in enumerate(p.items())}


def _setup(name, seed=0):
  key = jax.random.PRNGKey(seed)
  p = _perturb_bias(cells.get_cell(name).init(key, F, H), key)
  x = jax.random.normal(jax.random.fold_in(key, 99), (B, T, F))
  return p, x


# 'native': the LSTM and GRU on the C++ kernels (mir_jax.kernels); 'in_loop'/'hoisted': the
# fused LSTM/GRU layers with hand-written backward passes (input projection inside
# or before the loop); 'scan': autodiff of the generic scan.
IMPLS = ['native', 'in_loop', 'hoisted', 'scan']


def _skip_native(name, impl):
  if impl == 'native' and name not in ('lstm', 'gru'):
    pytest.skip('the native kernels run LSTMs and GRUs only')
  if impl == 'native' and not kernels.available():
    pytest.skip('the native kernels did not build here')


@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('name', CELL_NAMES)
@pytest.mark.parametrize('reverse', [False, True])
def test_layer_equals_loop_forward_and_gradients(name, reverse, impl):
  _skip_native(name, impl)
  p, x = _setup(name)
  lengths = jnp.asarray(LENGTHS)
  out, final = recurrent.rnn(name, p, x, lengths, reverse=reverse, impl=impl)
  ref_out, ref_final = reference_layer(name, p, x, LENGTHS, reverse=reverse)
  np.testing.assert_allclose(out, ref_out, atol=1e-6)
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6),
                         final, ref_final)

  w = jax.random.normal(jax.random.PRNGKey(7), ref_out.shape)

  def loss(fn, p, x):
    o, fin = fn(p, x)
    return jnp.sum(o * w) + jnp.sum(jax.tree_util.tree_leaves(fin)[0] ** 2)

  ours = jax.grad(functools.partial(
      loss, lambda p, x: recurrent.rnn(name, p, x, lengths, reverse=reverse, impl=impl)),
      (0, 1))(p, x)
  ref = jax.grad(functools.partial(
      loss, lambda p, x: reference_layer(name, p, x, LENGTHS, reverse)), (0, 1))(p, x)
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5),
                         ours, ref)


@pytest.mark.parametrize('impl', ['in_loop', 'hoisted'])
@pytest.mark.parametrize('name', ['lstm', 'gru'])
def test_chunked_backward_equals_loop(name, impl, monkeypatch):
  """The fused backward pass over several time chunks and a remainder.

  23 steps in chunks of 5: four full chunks whose products overlap the loop,
  and three leftover steps; lengths end inside a chunk, at a chunk boundary,
  in the remainder and at the last frame.
  """
  from mir_jax.nn import fused
  monkeypatch.setattr(fused, 'BACKWARD_CHUNK', 5)
  steps = 23
  key = jax.random.PRNGKey(5)
  p = _perturb_bias(cells.get_cell(name).init(key, F, H), key)
  x = jax.random.normal(jax.random.fold_in(key, 1), (4, steps, F))
  lengths_np = np.array([23, 13, 8, 2])
  lengths = jnp.asarray(lengths_np)
  w = jax.random.normal(jax.random.PRNGKey(2), (4, steps, H))

  def loss(fn, p, x):
    o, fin = fn(p, x)
    return jnp.sum(o * w) + jnp.sum(jax.tree_util.tree_leaves(fin)[-1] ** 2)

  for reverse in (False, True):
    ours = jax.grad(functools.partial(loss, lambda p, x: recurrent.rnn(
        name, p, x, lengths, reverse=reverse, impl=impl)), (0, 1))(p, x)
    ref = jax.grad(functools.partial(loss, lambda p, x: reference_layer(
        name, p, x, lengths_np, reverse)), (0, 1))(p, x)
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-5), ours, ref)


@pytest.mark.parametrize('impl', ['auto', 'scan'])
@pytest.mark.parametrize('name', CELL_NAMES)
@pytest.mark.parametrize('merge', ['concat', 'sum'])
def test_bidirectional_equals_two_loops(name, merge, impl):
  key = jax.random.PRNGKey(3)
  stacked = recurrent.bidirectional_init(key, name, F, H)
  stacked = jax.tree_util.tree_map(lambda a: a + 0.05, stacked)
  x = jax.random.normal(key, (B, T, F))
  lengths = jnp.asarray(LENGTHS)
  out, finals = recurrent.bidirectional(name, stacked, x, lengths, merge=merge, impl=impl)
  fwd_p = jax.tree_util.tree_map(lambda a: a[0], stacked)
  bwd_p = jax.tree_util.tree_map(lambda a: a[1], stacked)
  f_out, f_fin = reference_layer(name, fwd_p, x, LENGTHS)
  b_out, b_fin = reference_layer(name, bwd_p, x, LENGTHS, reverse=True)
  expected = (jnp.concatenate([f_out, b_out], -1) if merge == 'concat' else f_out + b_out)
  np.testing.assert_allclose(out, expected, atol=1e-6)
  for got, want in ((jax.tree_util.tree_map(lambda a: a[0], finals), f_fin),
                    (jax.tree_util.tree_map(lambda a: a[1], finals), b_fin)):
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6),
                           got, want)

  def loss(p, x):
    out, fin = recurrent.bidirectional(name, p, x, lengths, merge=merge, impl=impl)
    return jnp.sum(jnp.sin(out)) + jnp.sum(jax.tree_util.tree_leaves(fin)[0] ** 2)

  def ref_loss(p, x):
    fp = jax.tree_util.tree_map(lambda a: a[0], p)
    bp = jax.tree_util.tree_map(lambda a: a[1], p)
    fo, ff = reference_layer(name, fp, x, LENGTHS)
    bo, bf = reference_layer(name, bp, x, LENGTHS, reverse=True)
    o = jnp.concatenate([fo, bo], -1) if merge == 'concat' else fo + bo
    fin = jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]),
                                                           ff, bf))[0]
    return jnp.sum(jnp.sin(o)) + jnp.sum(fin ** 2)

  got = jax.grad(loss, (0, 1))(stacked, x)
  want = jax.grad(ref_loss, (0, 1))(stacked, x)
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), got, want)


def test_reverse_direction_starts_at_last_valid_frame():
  """The classic bug: a backward RNN that starts at the padded end."""
  p, x = _setup('lstm')
  lengths = jnp.asarray(LENGTHS)
  # Garbage in the padding must not leak into the backward pass.
  x = jnp.where(recurrent.lengths_to_mask(lengths, T)[..., None], x, 1e3)
  out, _ = recurrent.rnn('lstm', p, x, lengths, reverse=True)
  for b, n in enumerate(LENGTHS):
    _, h_first_step = cells.lstm_step(p, cells.lstm_initial_carry(1, H), x[b:b + 1, n - 1])
    np.testing.assert_allclose(out[b, n - 1], h_first_step[0], atol=1e-6)
    np.testing.assert_array_equal(out[b, n:], 0.0)


@pytest.mark.parametrize('impl', ['native', 'in_loop', 'hoisted'])
@pytest.mark.parametrize('name', ['lstm', 'gru'])
@pytest.mark.parametrize('bidir', [False, True])
def test_padding_changes_nothing(name, bidir, impl):
  _skip_native(name, impl)
  key = jax.random.PRNGKey(5)
  lengths = jnp.asarray(LENGTHS)
  if bidir:
    p = recurrent.bidirectional_init(key, name, F, H)
    layer = functools.partial(recurrent.bidirectional, name, impl=impl)
  else:
    p = cells.get_cell(name).init(key, F, H)
    layer = functools.partial(recurrent.rnn, name, impl=impl)
  x = jax.random.normal(key, (B, T, F))
  x_long = jnp.concatenate([x, 7.0 * jnp.ones((B, T, F))], axis=1)  # padded to 2T
  w = jax.random.normal(jax.random.PRNGKey(1), (B, T, (2 if bidir else 1) * H))
  w = w * recurrent.lengths_to_mask(lengths, T)[..., None]

  def loss(p, xin):
    out, _ = layer(p, xin, lengths)
    return jnp.sum(out[:, :T] * w), out

  (l1, o1), g1 = jax.value_and_grad(loss, (0, 1), has_aux=True)(p, x)
  (l2, o2), g2 = jax.value_and_grad(loss, (0, 1), has_aux=True)(p, x_long)
  np.testing.assert_allclose(o1, o2[:, :T], atol=1e-6)
  np.testing.assert_array_equal(o2[:, T:], 0.0)
  np.testing.assert_allclose(l1, l2, rtol=1e-6)
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6),
                         g1[0], g2[0])
  np.testing.assert_allclose(g1[1], g2[1][:, :T], atol=1e-6)
  np.testing.assert_array_equal(g2[1][:, T:], 0.0)


def test_no_lengths_equals_full_lengths():
  p, x = _setup('gru')
  a, fa = recurrent.rnn('gru', p, x)
  b, fb = recurrent.rnn('gru', p, x, jnp.full((B,), T))
  np.testing.assert_allclose(a, b, atol=1e-6)
  np.testing.assert_allclose(fa, fb, atol=1e-6)
  ar, _ = recurrent.rnn('gru', p, x, reverse=True)
  br, _ = recurrent.rnn('gru', p, x, jnp.full((B,), T), reverse=True)
  np.testing.assert_allclose(ar, br, atol=1e-6)


@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('name', CELL_NAMES)
def test_gradients_match_finite_differences(name, impl):
  _skip_native(name, impl)
  p, x = _setup(name, seed=11)
  lengths = jnp.asarray(LENGTHS)
  p64 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), p)

  def f(p, x):
    out, fin = recurrent.rnn(name, p, x, lengths, impl=impl)
    return jnp.sum(jnp.tanh(out)) + jnp.sum(jax.tree_util.tree_leaves(fin)[-1])

  from jax.test_util import check_grads
  check_grads(f, (p64, x), order=1, modes=['rev'], atol=2e-2, rtol=2e-2, eps=1e-2)


def test_jit_grad_vmap_compose():
  p, x = _setup('lstm')
  lengths = jnp.asarray(LENGTHS)

  def loss(p, x, lengths):
    return jnp.mean(recurrent.rnn('lstm', p, x, lengths)[0] ** 2)

  g = jax.jit(jax.grad(loss))(p, x, lengths)
  # vmap over an extra leading axis (e.g. an ensemble of inputs) == a loop.
  xs = jnp.stack([x, 2 * x])
  gv = jax.vmap(jax.grad(loss), in_axes=(None, 0, None))(p, xs, lengths)
  g2 = jax.grad(loss)(p, 2 * x, lengths)
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b[0], atol=1e-6), g, gv)
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b[1], atol=1e-6), g2, gv)


# Documented tolerance of bf16 compute against fp32 on unit-scale inputs.
BF16_ATOL = 5e-2


@pytest.mark.parametrize('name', ['lstm', 'gru'])
def test_bfloat16_compute_within_tolerance(name):
  p, x = _setup(name)
  lengths = jnp.asarray(LENGTHS)
  ref, _ = recurrent.rnn(name, p, x, lengths)
  out, _ = recurrent.rnn(name, p, x, lengths, compute_dtype=jnp.bfloat16)
  assert out.dtype == jnp.bfloat16
  assert p['w_hh'].dtype == jnp.float32  # params stay fp32
  err = float(jnp.max(jnp.abs(out.astype(jnp.float32) - ref)))
  assert err < BF16_ATOL, err
  assert err > 0  # it really did compute in lower precision


def test_unroll_does_not_change_results():
  p, x = _setup('lstm')
  lengths = jnp.asarray(LENGTHS)
  a, _ = recurrent.rnn('lstm', p, x, lengths, unroll=1)
  b, _ = recurrent.rnn('lstm', p, x, lengths, unroll=4)
  np.testing.assert_allclose(a, b, atol=1e-6)


def test_stack_dropout_and_residual():
  key = jax.random.PRNGKey(0)
  layers = recurrent.stack_init(key, 'gru', F, H, 3, bidirectional=True, merge='sum')
  x = jax.random.normal(key, (B, T, F))
  lengths = jnp.asarray(LENGTHS)
  run = functools.partial(recurrent.stack, 'gru', layers, x, lengths, bidirectional=True,
                          merge='sum')
  det1, finals = run()
  det2, _ = run(dropout_rate=0.5)  # no key: deterministic
  np.testing.assert_array_equal(det1, det2)
  assert len(finals) == 3
  drop_a, _ = run(dropout_rate=0.5, dropout_key=jax.random.PRNGKey(1))
  drop_b, _ = run(dropout_rate=0.5, dropout_key=jax.random.PRNGKey(2))
  assert not np.allclose(drop_a, det1) and not np.allclose(drop_a, drop_b)
  # Stack == layer by layer by hand.
  h = x
  for p in layers:
    h, _ = recurrent.bidirectional('gru', p, h, lengths, merge='sum')
  np.testing.assert_allclose(det1, h, atol=1e-6)
  # Residual adds each layer's input from the second layer on.
  res, _ = run(residual=True)
  h1, _ = recurrent.bidirectional('gru', layers[0], x, lengths, merge='sum')
  h2, _ = recurrent.bidirectional('gru', layers[1], h1, lengths, merge='sum')
  h2 = h2 + h1
  h3, _ = recurrent.bidirectional('gru', layers[2], h2, lengths, merge='sum')
  np.testing.assert_allclose(res, h3 + h2, atol=1e-6)


def test_jitted_init_of_a_deep_bidirectional_stack_terminates():
  """Regression: a vmapped orthogonal init of two layers deadlocked XLA:CPU under jit."""
  import subprocess
  import sys
  code = ('import jax; from mir_jax.nn import recurrent; '
          'p = jax.jit(lambda k: recurrent.stack_init(k, "lstm", 8, 64, 3))(jax.random.key(0)); '
          'print(p[2]["w_hh"].shape)')
  out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=240)
  assert out.returncode == 0, out.stderr
  assert '(2, 64, 256)' in out.stdout
