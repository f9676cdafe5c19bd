"""CRNN frame model: keeps the frame rate, ignores padding, the unidirectional variant is causal."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from mir_jax.models.crnn import CRNN, ConvFrontEnd, build_crnn


def batch(t=24, bins=12, seed=0, length=None):
  rng = np.random.default_rng(seed)
  length = t if length is None else length
  return {'features': rng.normal(size=(2, t, bins, 1)).astype(np.float32),
          'mask': np.arange(t)[None].repeat(2, 0) < np.array([[t], [length]]),
          'lengths': np.array([t, length], np.int32)}


def small(**kw):
  return CRNN(num_outputs=5, conv_features=(4, 4), freq_pool=(2, 2), hidden_size=6, **kw)


def test_padding_does_not_change_real_frames():
  b = batch(t=24, length=15)
  model = small()
  params = model.init(jax.random.key(0), b)
  out = model.apply(params, b)
  assert out.shape == (2, 24, 5)  # one output per input frame
  garbage = dict(b, features=b['features'].copy())
  garbage['features'][1, 15:] = 50.0
  np.testing.assert_allclose(model.apply(params, garbage)[1, :15], out[1, :15], rtol=1e-4, atol=1e-5)
  alone = {k: v[1:, :15] if k != 'lengths' else v[1:] for k, v in b.items()}
  np.testing.assert_allclose(model.apply(params, alone)[0], out[1, :15], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('bidirectional', [False, True])
def test_unidirectional_is_causal(bidirectional):
  b = batch()
  model = small(bidirectional=bidirectional)
  params = model.init(jax.random.key(0), b)
  out = model.apply(params, b)
  future = dict(b, features=b['features'].copy())
  future['features'][:, 12:] += 5.0
  changed = model.apply(params, future)
  past_same = np.allclose(changed[:, :12], out[:, :12], rtol=1e-5, atol=1e-6)
  assert past_same == (not bidirectional)
  assert not np.allclose(changed[:, 12:], out[:, 12:])


def test_front_end_shapes_and_pooled_mask():
  x = jnp.ones((1, 9, 16, 2))
  mask = jnp.arange(9)[None] < 5
  fe = ConvFrontEnd(features=(3, 5), freq_pool=(2, 2), time_pool=(2, 2))
  y, m = fe.apply(fe.init(jax.random.key(0), x, mask), x, mask)
  assert y.shape == (1, 3, 4, 5)
  np.testing.assert_array_equal(m, [[True, True, False]])  # frames 0-3, 4-7 (has 4), 8-
  np.testing.assert_array_equal(y[0, 2], 0.0)
  with pytest.raises(ValueError, match='config.model.freq_pool'):
    bad = ConvFrontEnd(features=(3, 5), freq_pool=(2,))
    bad.init(jax.random.key(0), x, mask)


def test_builder_reads_config():
  cfg = ml_collections.ConfigDict({'name': 'crnn', 'conv_features': (4,), 'freq_pool': (3,),
                                   'hidden_size': 8, 'bidirectional': False, 'cell': 'gru'})
  model = build_crnn(cfg, 25, jnp.float32)
  assert (model.num_outputs, model.hidden_size, model.bidirectional, model.cell) == (25, 8, False, 'gru')
  assert model.freq_pool == (3,)
