"""Attention scores, masked softmax and context against numpy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mir_jax.nn import attention

B, S, HD, HE, A = 3, 7, 5, 6, 4
LENGTHS = np.array([7, 3, 1])


def _inputs(seed=0, hd=HD):
  rng = np.random.default_rng(seed)
  q = rng.normal(size=(B, hd)).astype(np.float32)
  k = rng.normal(size=(B, S, HE)).astype(np.float32)
  v = rng.normal(size=(B, S, 3)).astype(np.float32)
  mask = np.arange(S)[None, :] < LENGTHS[:, None]
  return q, k, v, mask


def _np_softmax_valid(scores, n):
  e = np.exp(scores[:n] - scores[:n].max())
  out = np.zeros_like(scores)
  out[:n] = e / e.sum()
  return out


def test_masked_softmax_sums_to_one_and_is_zero_on_padding():
  scores = jnp.asarray(np.random.default_rng(1).normal(size=(B, S)) * 30, jnp.float32)
  mask = np.arange(S)[None, :] < LENGTHS[:, None]
  w = np.asarray(attention.masked_softmax(scores, mask))
  np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-6)
  assert np.all(w[~mask] == 0.0)
  for b in range(B):
    np.testing.assert_allclose(w[b], _np_softmax_valid(np.asarray(scores[b], np.float64), LENGTHS[b]),
                               rtol=1e-5, atol=1e-7)


def test_masked_softmax_empty_row_is_zero_not_nan():
  w = attention.masked_softmax(jnp.ones((2, 4)), np.array([[True] * 4, [False] * 4]))
  assert np.all(np.isfinite(w))
  np.testing.assert_array_equal(np.asarray(w[1]), 0.0)
  g = jax.grad(lambda s: attention.masked_softmax(s, np.array([[True, False, True, False]]))[0, 0])(
      jnp.ones((1, 4)))
  assert np.all(np.isfinite(g)) and g[0, 1] == 0.0 and g[0, 3] == 0.0


@pytest.mark.parametrize('kind', ['additive', 'dot', 'general'])
def test_attend_matches_numpy(kind):
  hd = HE if kind == 'dot' else HD
  q, k, v, mask = _inputs(hd=hd)
  key = jax.random.PRNGKey(0)
  params = {'additive': lambda: attention.additive_init(key, hd, HE, A),
            'general': lambda: attention.general_init(key, hd, HE),
            'dot': lambda: None}[kind]()
  ctx, w = attention.attend(kind, params, q, k, v, mask)
  p = jax.tree_util.tree_map(np.asarray, params)
  for b in range(B):
    if kind == 'additive':
      s = np.array([p['v'] @ np.tanh(q[b] @ p['w_q'] + k[b, j] @ p['w_k'] + p['b']) for j in range(S)])
    elif kind == 'dot':
      s = k[b] @ q[b]
    else:
      s = k[b] @ (p['w'].T @ q[b])
    ref_w = _np_softmax_valid(s.astype(np.float64), LENGTHS[b])
    np.testing.assert_allclose(np.asarray(w[b]), ref_w, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(ctx[b]), ref_w @ v[b], rtol=1e-4, atol=1e-5)
    assert np.all(np.asarray(w[b, LENGTHS[b]:]) == 0.0)


def test_additive_with_projected_keys_is_the_same():
  q, k, v, mask = _inputs()
  params = attention.additive_init(jax.random.PRNGKey(3), HD, HE, A)
  c1, w1 = attention.attend('additive', params, q, k, v, mask)
  c2, w2 = attention.attend('additive', params, q, attention.additive_keys(params, k), v, mask,
                            projected_keys=True)
  np.testing.assert_allclose(np.asarray(w1), np.asarray(w2), rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(np.asarray(c1), np.asarray(c2), rtol=1e-6, atol=1e-6)


def test_none_takes_the_last_valid_state():
  q, k, v, mask = _inputs()
  ctx, w = attention.attend('none', None, q, k, v, mask)
  for b in range(B):
    np.testing.assert_allclose(np.asarray(ctx[b]), v[b, LENGTHS[b] - 1], rtol=1e-6)
  np.testing.assert_allclose(np.asarray(w).sum(-1), 1.0)


def test_bad_kind_and_width_errors():
  q, k, v, mask = _inputs()
  with pytest.raises(ValueError, match='unknown attention kind'):
    attention.attend('luong', None, q, k, v, mask)
  with pytest.raises(ValueError, match='equal query and key widths'):
    attention.attend('dot', None, q, k, v, mask)


def test_location_attention_matches_numpy_and_reads_the_previous_weights():
  q, k, v, mask = _inputs()
  params = attention.location_init(jax.random.PRNGKey(5), HD, HE, A, filters=3, width=5)
  rng = np.random.default_rng(2)
  prev = attention.masked_softmax(jnp.asarray(rng.normal(size=(B, S)), jnp.float32), mask)
  cum = prev + attention.masked_softmax(jnp.asarray(rng.normal(size=(B, S)), jnp.float32), mask)
  ctx, w = attention.attend('location', params, q, k, v, mask, previous=(prev, cum))
  p = jax.tree_util.tree_map(np.asarray, params)
  width = p['conv'].shape[0]
  for b in range(B):
    x = np.stack([np.asarray(prev[b]), np.asarray(cum[b])], -1)  # (S, 2)
    xp = np.pad(x, ((width // 2, width // 2), (0, 0)))
    f = np.array([np.einsum('wc,wcf->f', xp[j:j + width], p['conv']) for j in range(S)])
    s = np.array([p['v'] @ np.tanh(q[b] @ p['w_q'] + k[b, j] @ p['w_k'] + p['b'] + f[j] @ p['w_loc'])
                  for j in range(S)])
    ref_w = _np_softmax_valid(s.astype(np.float64), LENGTHS[b])
    np.testing.assert_allclose(np.asarray(w[b]), ref_w, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(ctx[b]), ref_w @ v[b], rtol=1e-4, atol=1e-5)
  # Other previous weights give other scores: the location term is used.
  _, w2 = attention.attend('location', params, q, k, v, mask, previous=(cum, prev))
  assert np.abs(np.asarray(w2) - np.asarray(w)).max() > 1e-4
  with pytest.raises(ValueError, match='previous'):
    attention.attend('location', params, q, k, v, mask)
