"""Clip models: every aggregation ignores padding, pooling helpers match numpy, config errors."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from mir_jax.models.clip import (AGGREGATIONS, ClipModel, RotationInvariant, build_clip_model,
                                 masked_max, masked_mean, masked_softmax, onset_autocorrelation,
                                 pitch_class_profile)

T_REAL, T_PAD, BINS = 19, 32, 16


def padded_pair(seed=0):
  """The same clip alone (all frames real) and padded with garbage frames (mask False)."""
  rng = np.random.default_rng(seed)
  real = rng.normal(size=(1, T_REAL, BINS, 1)).astype(np.float32)
  alone = {'features': real, 'mask': np.ones((1, T_REAL), bool),
           'lengths': np.array([T_REAL], np.int32)}
  garbage = 10 * rng.normal(size=(1, T_PAD - T_REAL, BINS, 1)).astype(np.float32)
  padded = {'features': np.concatenate([real, garbage], axis=1),
            'mask': np.arange(T_PAD)[None] < T_REAL, 'lengths': np.array([T_REAL], np.int32)}
  return alone, padded


@pytest.mark.parametrize('aggregation,rnn_layers',
                         [(a, 0) for a in AGGREGATIONS] + [('recurrent', 1)])
def test_output_ignores_padding(aggregation, rnn_layers):
  model = ClipModel(num_outputs=5, aggregation=aggregation, conv_features=(4, 8),
                    freq_pool=(2, 2), time_pool=(2, 1), embed_size=8, hidden_size=6,
                    rnn_layers=rnn_layers, cell='lstm', strided_layers=2)
  alone, padded = padded_pair()
  params = model.init(jax.random.key(0), padded)
  out_alone = model.apply(params, alone)
  out_padded = model.apply(params, padded)
  assert out_alone.shape == (1, 5)
  np.testing.assert_allclose(out_padded, out_alone, rtol=2e-4, atol=2e-5)
  assert not np.allclose(out_alone, 0.0)


@pytest.mark.slow
def test_aggregations_differ_and_are_trainable():
  alone, _ = padded_pair(1)
  outs = {}
  for aggregation in AGGREGATIONS:
    model = ClipModel(num_outputs=3, aggregation=aggregation, conv_features=(4,), freq_pool=(2,),
                      embed_size=8, hidden_size=4)
    params = model.init(jax.random.key(0), alone)
    out, grads = jax.jit(jax.value_and_grad(lambda p, m=model: m.apply(p, alone).sum()))(params)
    norms = [float(jnp.abs(g).sum()) for g in jax.tree_util.tree_leaves(grads)]
    assert all(np.isfinite(norms)) and sum(norms) > 0
    outs[aggregation] = np.asarray(model.apply(params, alone))
  names = list(outs)
  for i, a in enumerate(names):
    for b in names[i + 1:]:
      assert not np.allclose(outs[a], outs[b]), (a, b)


def test_pooling_helpers_match_numpy():
  rng = np.random.default_rng(4)
  x = rng.normal(size=(3, 7, 5)).astype(np.float32)
  mask = np.array([[1] * 7, [1, 1, 1, 0, 0, 0, 0], [0] * 7], bool)
  np.testing.assert_allclose(masked_mean(x, mask)[0], x[0].mean(0), rtol=1e-6)
  np.testing.assert_allclose(masked_mean(x, mask)[1], x[1, :3].mean(0), rtol=1e-6)
  np.testing.assert_allclose(masked_max(x, mask)[1], x[1, :3].max(0))
  np.testing.assert_array_equal(masked_max(x, mask)[2], 0.0)  # an empty row gives zeros
  scores = rng.normal(size=(3, 7)).astype(np.float32)
  w = np.asarray(masked_softmax(scores, mask))
  ref = np.exp(scores[1, :3]) / np.exp(scores[1, :3]).sum()
  np.testing.assert_allclose(w[1, :3], ref, rtol=1e-5)
  np.testing.assert_array_equal(w[1, 3:], 0.0)
  np.testing.assert_array_equal(w[2], 0.0)
  g = jax.grad(lambda s: masked_softmax(s, mask)[2].sum() + masked_softmax(s, mask)[1, 0])(scores)
  assert np.all(np.isfinite(g))


def test_recurrent_aggregation_reads_the_final_states():
  # The recurrent summary at length L must not depend on frames after L, but must
  # depend on the last real frame (the forward final state sees it).
  model = ClipModel(num_outputs=4, aggregation='recurrent', conv_features=(4,), freq_pool=(2,),
                    embed_size=8, hidden_size=4, norm=False)
  alone, _ = padded_pair(2)
  params = model.init(jax.random.key(1), alone)
  base = model.apply(params, alone)
  changed = dict(alone, features=alone['features'].copy())
  changed['features'][:, -1] += 3.0
  assert not np.allclose(model.apply(params, changed), base)


def test_builder_reads_config_and_rejects_unknown_aggregation():
  cfg = ml_collections.ConfigDict({'name': 'clip_crnn', 'aggregation': 'attention',
                                   'conv_features': (4, 8), 'freq_pool': (2, 2)})
  model = build_clip_model(cfg, 7, jnp.float32)
  assert model.rnn_layers == 1 and model.aggregation == 'attention' and model.num_outputs == 7
  cfg.name = 'clip_cnn'
  assert build_clip_model(cfg, 7, jnp.float32).rnn_layers == 0
  cfg.aggregation = 'median'
  with pytest.raises(ValueError, match='config.model.aggregation'):
    build_clip_model(cfg, 7, jnp.float32)


@pytest.mark.parametrize('aggregation,rnn_layers',
                         [(a, 0) for a in AGGREGATIONS] + [('attention', 1)])
def test_pitch_classes_make_the_model_transposition_equivariant(aggregation, rnn_layers):
  rng = np.random.default_rng(5)
  chroma = rng.random((1, 10, 12, 1)).astype(np.float32)
  tile = lambda c: np.concatenate([c, c], axis=2)  # two identical octaves  # pylint: disable=unnecessary-lambda-assignment
  base = {'features': tile(chroma), 'mask': np.ones((1, 10), bool)}
  up = {'features': tile(np.roll(chroma, 1, axis=2)), 'mask': np.ones((1, 10), bool)}
  # Recurrent layers and every aggregation run per class with shared weights
  # (a 'recurrent' summary of 2 x 5 units does not divide into 12 classes otherwise).
  model = ClipModel(num_outputs=24, aggregation=aggregation, conv_features=(), freq_pool=(),
                    embed_size=8, pitch_classes=12, rnn_layers=rnn_layers, hidden_size=5,
                    dense_size=6)
  params = model.init(jax.random.key(0), base)
  out = np.asarray(model.apply(params, base)).reshape(2, 12)  # (mode, pitch class)
  out_up = np.asarray(model.apply(params, up)).reshape(2, 12)
  np.testing.assert_allclose(out_up, np.roll(out, 1, axis=1), rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match='config.model.pitch_classes'):
    ClipModel(num_outputs=24, conv_features=(), freq_pool=(), pitch_classes=7).init(
        jax.random.key(0), base)


def test_pitch_profile_folds_octaves_and_is_transposition_invariant():
  rng = np.random.default_rng(7)
  feats = rng.normal(size=(2, 9, 24, 2)).astype(np.float32)  # 2 octaves of 12 bins, 2 channels
  mask = np.arange(9)[None] < np.array([[9], [5]])
  prof = np.asarray(pitch_class_profile(feats, mask))
  for b, n in enumerate([9, 5]):
    ref = feats[b, :n].reshape(n, 2, 12, 2).mean(axis=(0, 1, 3))
    ref = (ref - ref.mean()) / np.sqrt(np.mean((ref - ref.mean()) ** 2))
    np.testing.assert_allclose(prof[b], ref, rtol=1e-4, atol=1e-5)
  # Max over rotations: every transposition of a profile gives the same features,
  # while a different profile (not a rotation) gives different ones.
  net = RotationInvariant(features=6)
  params = net.init(jax.random.key(1), prof)
  out = np.asarray(net.apply(params, prof))
  for k in (1, 5, 11):
    np.testing.assert_allclose(np.asarray(net.apply(params, np.roll(prof, k, axis=-1))), out,
                               rtol=1e-5, atol=1e-6)
  assert np.abs(out[0] - out[1]).max() > 1e-4

  # In the model: the features join the pooled embedding (more output inputs), and
  # a bin count that is not whole octaves is a config error naming the key.
  batch = {'features': feats, 'mask': mask}
  plain = ClipModel(num_outputs=3, conv_features=(4,), freq_pool=(2,), embed_size=8)
  with_profile = ClipModel(num_outputs=3, conv_features=(4,), freq_pool=(2,), embed_size=8,
                           pitch_profile=5)
  w0 = plain.init(jax.random.key(0), batch)['params']['output']['kernel']
  w1 = with_profile.init(jax.random.key(0), batch)['params']['output']['kernel']
  assert w1.shape[0] == w0.shape[0] + 5
  with pytest.raises(ValueError, match='config.model.pitch_profile'):
    with_profile.init(jax.random.key(0), {'features': feats[:, :, :20], 'mask': mask})


def _numpy_rhythm(x, n, max_lag, bands):
  """Step-by-step reference of onset_autocorrelation for one clip of n real frames."""
  f = x.shape[1]
  edges = [round(i * f / bands) for i in range(bands + 1)]
  out_acf, out_level = [], []
  for lo, hi in zip(edges[:-1], edges[1:]):
    band = x[:n, lo:hi].mean(axis=(1, 2))
    env = np.maximum(np.diff(band), 0.0)
    c = env - env.mean()
    var = np.mean(c * c)
    acf = [np.sum(c[l:] * c[:-l]) / len(env) if l < len(env) else 0.0
           for l in range(1, max_lag + 1)]
    out_acf.append(np.array(acf) / (var + 1e-6))
    out_level.append([np.log(env.mean() + 1e-4), 0.5 * np.log(var + 1e-8)])
  return np.concatenate([np.stack(out_acf, 1), np.array(out_level).T], axis=0).reshape(-1)


def test_rhythm_profile_matches_numpy_finds_the_period_and_ignores_padding():
  rng = np.random.default_rng(3)
  t, bins = 60, 8
  feats = 0.1 * rng.normal(size=(2, t, bins, 1)).astype(np.float32)
  feats[0, ::8, :4] += 3.0  # clicks every 8 frames in the low band only
  feats[1, ::5] += 3.0  # every 5 frames, all bands
  lengths = np.array([60, 41])
  mask = np.arange(t)[None] < lengths[:, None]
  feats[1, 41:] = 50 * rng.normal(size=(t - 41, bins, 1))  # garbage in the padding
  got = np.asarray(onset_autocorrelation(feats, mask, max_lag=12, bands=2))
  assert got.shape == (2, 2 * 14)
  for b in range(2):
    np.testing.assert_allclose(got[b], _numpy_rhythm(feats[b], lengths[b], 12, 2),
                               rtol=1e-4, atol=1e-4)
  acf0 = got[0].reshape(14, 2)[:12]  # (lags, bands)
  assert int(np.argmax(acf0[:, 0])) + 1 == 8  # the low band's strongest lag is the period
  assert acf0[:, 0].max() > 3 * abs(acf0[:, 1]).max()  # the high band has no clicks
  assert int(np.argmax(got[1].reshape(14, 2)[:12, 1])) + 1 == 5

  # In the model: the features join the pooled embedding, padding changes nothing,
  # and the per-class key head refuses them, naming the key.
  alone, padded = padded_pair(4)
  model = ClipModel(num_outputs=3, conv_features=(4,), freq_pool=(2,), embed_size=8,
                    aggregation='attention', rhythm_profile=5)
  params = model.init(jax.random.key(0), padded)
  assert params['params']['output']['kernel'].shape[0] == 8 + 5
  np.testing.assert_allclose(model.apply(params, padded), model.apply(params, alone),
                             rtol=2e-4, atol=2e-5)
  with pytest.raises(ValueError, match='config.model.rhythm_profile'):
    ClipModel(num_outputs=24, conv_features=(), freq_pool=(), pitch_classes=12,
              rhythm_profile=4).init(jax.random.key(0), {'features': feats[:, :, :12]})
