"""The seq2seq model: attention masks, causality, padding invariance, decoding."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mir_jax.models import seq2seq
from mir_jax.models.seq2seq import Seq2Seq

V, START, END = 9, 1, 2


def _model(**kw):
  args = dict(vocab_size=V, embed_dim=6, encoder_hidden=8, encoder_layers=2, downsample='pool',
              downsample_factor=2, decoder_hidden=16, attention='additive', attention_dim=5,
              output_hidden=12)
  args.update(kw)
  return Seq2Seq(**args)


def _init(m, seed, *args):
  """Random params of the right shapes (``m.init`` spends seconds compiling cell inits)."""
  rng = np.random.default_rng(seed)
  shapes = jax.eval_shape(m.init, jax.random.PRNGKey(0), *args)
  return jax.tree_util.tree_map(lambda s: jnp.asarray(rng.normal(size=s.shape) * 0.4, s.dtype),
                                shapes)


def _data(seed=0, b=3, t=11, f=4, length=6):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.normal(size=(b, t, f, 1)), jnp.float32)
  lengths = jnp.asarray([t, 7, 3][:b], jnp.int32)
  tin = jnp.asarray(np.concatenate([np.full((b, 1), START), rng.integers(3, V, (b, length - 1))], 1),
                    jnp.int32)
  return x, lengths, tin


@pytest.mark.parametrize('downsample,attention', [('pool', 'additive'), ('conv', 'general'),
                                                  ('pool', 'location'),
                                                  pytest.param('stack', 'dot', marks=pytest.mark.slow)])
def test_attention_sums_to_one_and_ignores_padded_frames(downsample, attention):
  m = _model(downsample=downsample, attention=attention)
  x, lengths, tin = _data()
  v = _init(m, 0, x, lengths, tin)
  _, w = m.apply(v, x, lengths, tin, return_attention=True)
  f = 1 if downsample == 'none' else 2
  enc_len = -(-np.asarray(lengths) // f)
  assert w.shape[2] == -(-x.shape[1] // f)
  np.testing.assert_allclose(np.asarray(w).sum(-1), 1.0, rtol=1e-5)
  for b, n in enumerate(enc_len):
    assert np.all(np.asarray(w[b, :, n:]) == 0.0)


@pytest.mark.parametrize('downsample', ['pool', pytest.param('conv', marks=pytest.mark.slow)])
def test_padding_frames_do_not_change_outputs(downsample):
  m = _model(downsample=downsample, attention='dot', decoder_hidden=16)
  x, lengths, tin = _data(t=7)
  v = _init(m, 1, x, lengths, tin)
  short = m.apply(v, x, lengths, tin)
  noise = jnp.asarray(np.random.default_rng(5).normal(size=(3, 6, 4, 1)), jnp.float32)
  longer = jnp.concatenate([x, noise], axis=1)   # more frames past every length
  valid = np.arange(13)[None, :, None, None] < np.asarray(lengths)[:, None, None, None]
  longer = jnp.where(valid, longer, noise.mean())  # garbage in padded frames
  np.testing.assert_allclose(np.asarray(m.apply(v, longer, lengths, tin)), np.asarray(short),
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('attention', ['additive', 'location'])
def test_decoder_is_causal(attention):
  m = _model(input_feeding=True, attention=attention)  # the previous context must not leak the future either
  x, lengths, tin = _data(length=7)
  v = _init(m, 2, x, lengths, tin)
  base = np.asarray(m.apply(v, x, lengths, tin))
  j = 4
  changed = tin.at[:, j].set((tin[:, j] - 3 + 1) % (V - 3) + 3)
  out = np.asarray(m.apply(v, x, lengths, changed))
  np.testing.assert_allclose(out[:, :j], base[:, :j], rtol=1e-6, atol=1e-6)
  assert np.all(np.abs(out[:, j:] - base[:, j:]).max(axis=(1, 2)) > 1e-6)


def test_token_dropout_hides_previous_tokens_in_training_only():
  x, lengths, tin = _data(length=6)
  changed = tin.at[:, 1:].set((tin[:, 1:] - 3 + 1) % (V - 3) + 3)
  m = _model(token_dropout=1.0)  # every previous token but <s> becomes <pad>
  v = _init(m, 4, x, lengths, tin)
  train = lambda t: np.asarray(m.apply(v, x, lengths, t, deterministic=False,
                                       rngs={'dropout': jax.random.PRNGKey(0)}))
  np.testing.assert_allclose(train(changed), train(tin), rtol=1e-6, atol=1e-6)
  # evaluation (deterministic) reads the tokens
  base, out = np.asarray(m.apply(v, x, lengths, tin)), np.asarray(m.apply(v, x, lengths, changed))
  assert np.abs(out[:, 2:] - base[:, 2:]).max() > 1e-4
  # with no token dropout, training reads them too
  m0 = _model(token_dropout=0.0)
  t0 = lambda t: np.asarray(m0.apply(v, x, lengths, t, deterministic=False,
                                     rngs={'dropout': jax.random.PRNGKey(0)}))
  assert np.abs(t0(changed)[:, 2:] - t0(tin)[:, 2:]).max() > 1e-4


def _assert_steps_match_teacher_forcing(m, v, x, lengths, tin):
  logits = m.apply(v, x, lengths, tin)
  enc = m.apply(v, x, lengths, method=Seq2Seq.encode)
  state = m.apply(v, enc, method=Seq2Seq.initial_state)
  for t in range(tin.shape[1]):
    lp, state, _ = m.apply(v, enc, state, tin[:, t], method=Seq2Seq.decode_step)
    np.testing.assert_allclose(np.asarray(lp), np.asarray(jax.nn.log_softmax(logits[:, t])),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('attention', ['additive', 'location'])
def test_teacher_forcing_equals_step_by_step_decoding(attention):
  m = _model(attention=attention)
  x, lengths, tin = _data()
  _assert_steps_match_teacher_forcing(m, _init(m, 3, x, lengths, tin), x, lengths, tin)


@pytest.mark.parametrize('attention', ['general', 'location'])
def test_greedy_equals_beam_one_and_compiles_once(attention):
  m = _model(attention=attention)
  x, lengths, tin = _data()
  v = _init(m, 4, x, lengths, tin)
  traces = {'greedy': 0, 'beam': 0}

  def fn(kind):
    def run(variables, feats, lens):
      traces[kind] += 1  # only while tracing
      return seq2seq.decode(m, variables, feats, lens, max_len=6, start_id=START, end_id=END,
                            method=kind, beam_size=1, length_penalty=0.6)
    return jax.jit(run)

  greedy, beam = fn('greedy'), fn('beam')
  g, b = greedy(v, x, lengths), beam(v, x, lengths)
  np.testing.assert_array_equal(np.asarray(g.tokens), np.asarray(b.tokens))
  np.testing.assert_allclose(np.asarray(g.scores), np.asarray(b.scores), rtol=1e-5)
  x2, _, _ = _data(seed=9)
  greedy(v, x2, lengths)
  beam(v, x2, lengths)
  assert traces == {'greedy': 1, 'beam': 1}


def test_label_smoothed_loss_matches_numpy():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(2, 4, 5)).astype(np.float32)
  targets = rng.integers(0, 5, (2, 4))
  mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool)
  eps = 0.1
  loss, aux = seq2seq.sequence_cross_entropy(jnp.asarray(logits), targets, mask, eps)
  logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  q = np.full((2, 4, 5), eps / 5) + (1 - eps) * np.eye(5)[targets]
  ref = -(q * logp).sum(-1)[mask].mean()
  nll = -np.take_along_axis(logp, targets[..., None], -1)[..., 0][mask].mean()
  np.testing.assert_allclose(float(loss), ref, rtol=1e-5)
  np.testing.assert_allclose(float(aux['nll']), nll, rtol=1e-5)


def test_bad_config_errors():
  x, lengths, tin = _data()
  with pytest.raises(ValueError, match='downsample'):
    _model(downsample='avg').init(jax.random.PRNGKey(0), x, lengths, tin)
  with pytest.raises(ValueError, match='dot'):
    _model(attention='dot', decoder_hidden=10).init(jax.random.PRNGKey(0), x, lengths, tin)


def test_rhythm_features_reach_every_step_ignore_padding_and_decode():
  m = _model(rhythm_features=4)
  x, lengths, tin = _data(t=12)
  v = _init(m, 6, x, lengths, tin)
  assert v['params']['output_hidden']['w'].shape[0] == 16 + 16 + 4
  base = np.asarray(m.apply(v, x, lengths, tin))
  # Garbage past each length changes nothing (the autocorrelation skips padded frames) ...
  valid = np.arange(12)[None, :, None, None] < np.asarray(lengths)[:, None, None, None]
  noisy = jnp.where(valid, x, 30.0 * jnp.asarray(np.random.default_rng(1).normal(size=x.shape),
                                                 jnp.float32))
  np.testing.assert_allclose(np.asarray(m.apply(v, noisy, lengths, tin)), base, rtol=1e-5,
                             atol=1e-5)
  # ... while the rhythm head's weights change the logits of every step.
  v2 = jax.tree_util.tree_map(lambda a: a, v)
  v2['params']['rhythm_out'] = jax.tree_util.tree_map(lambda a: a + 0.5,
                                                      v['params']['rhythm_out'])
  changed = np.asarray(m.apply(v2, x, lengths, tin))
  assert np.all(np.abs(changed - base).max(axis=(0, 2)) > 1e-4)
  # Teacher forcing equals step-by-step decoding, and beam 1 equals greedy.
  _assert_steps_match_teacher_forcing(m, v, x, lengths, tin)
  kw = dict(max_len=5, start_id=START, end_id=END, beam_size=1)
  g = seq2seq.decode(m, v, x, lengths, method='greedy', **kw)
  b = seq2seq.decode(m, v, x, lengths, method='beam', **kw)
  np.testing.assert_array_equal(np.asarray(g.tokens), np.asarray(b.tokens))
  b4 = seq2seq.decode(m, v, x, lengths, method='beam', **{**kw, 'beam_size': 3})
  assert b4.tokens.shape[0] == x.shape[0]
