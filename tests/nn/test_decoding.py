"""Greedy and beam search against brute-force enumeration and each other."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mir_jax.nn import decoding

V, D = 5, 8
PAD, START, END = 0, 1, 2


def _markov_params(seed=0):
  rng = np.random.default_rng(seed)
  return {'emb': jnp.asarray(rng.normal(size=(V, D)) * 1.5, jnp.float32),
          'u': jnp.asarray(rng.normal(size=(D, D)) * 0.7, jnp.float32),
          'w': jnp.asarray(rng.normal(size=(D, V)) * 1.5, jnp.float32)}


def _make_step(p):
  """A toy recurrent language model; the state is (h (N, D), step count (N,))."""
  def step(state, ids):
    h, n = state
    h = jnp.tanh(h @ p['u'] + p['emb'][ids])
    lp = jax.nn.log_softmax(h @ p['w'])
    return lp, (h, n + 1), jax.nn.softmax(h[:, :4])   # fake attention over 4 frames
  return step


def _init(batch, seed=1):
  h = jnp.asarray(np.random.default_rng(seed).normal(size=(batch, D)), jnp.float32)
  return (h, jnp.zeros((batch,), jnp.int32))


def _score_sequence(p, h0, seq):
  """Sum of log-probs of ``seq`` computed step by step in numpy."""
  h = np.asarray(h0, np.float64)
  prev, total = START, 0.0
  for tok in seq:
    h = np.tanh(h @ np.asarray(p['u'], np.float64) + np.asarray(p['emb'], np.float64)[prev])
    logits = h @ np.asarray(p['w'], np.float64)
    total += logits[tok] - np.log(np.exp(logits - logits.max()).sum()) - logits.max()
    prev = tok
  return total


def _brute_force(p, h0, max_len, alpha):
  """Best hypothesis over all sequences that end at END or fill max_len."""
  best = None
  for n in range(1, max_len + 1):
    for seq in itertools.product(range(V), repeat=n):
      if END in seq[:-1] or (n < max_len and seq[-1] != END):
        continue
      s = _score_sequence(p, h0, seq)
      r = s / ((5 + n) / 6) ** alpha if alpha else s
      if best is None or r > best[0]:
        best = (r, seq, s)
  return best


def test_greedy_matches_python_loop_and_pads_after_end():
  p = _markov_params()
  step = _make_step(p)
  res = jax.jit(lambda s: decoding.greedy_decode(step, s, START, END, 6))(_init(4))
  h0 = np.asarray(_init(4)[0])
  for b in range(4):
    seq, prev, h = [], START, h0[b:b + 1]
    for _ in range(6):
      lp, (h, _), _ = step((jnp.asarray(h), jnp.zeros((1,), jnp.int32)), jnp.asarray([prev]))
      prev = int(np.argmax(np.asarray(lp)[0]))
      seq.append(prev)
      if prev == END:
        break
    n = len(seq)
    assert int(res.lengths[b]) == n
    np.testing.assert_array_equal(np.asarray(res.tokens[b, :n]), seq)
    assert np.all(np.asarray(res.tokens[b, n:]) == PAD)
    np.testing.assert_allclose(float(res.scores[b]), _score_sequence(p, h0[b], seq), rtol=1e-4)
    assert np.all(np.asarray(res.attention[b, n:]) == 0)


@pytest.mark.parametrize('seed', [0, pytest.param(1, marks=pytest.mark.slow)])
def test_beam_one_equals_greedy(seed):
  p = _markov_params(seed)
  step = _make_step(p)
  init = _init(6, seed + 10)
  g = decoding.greedy_decode(step, init, START, END, 7)
  b = decoding.beam_search(step, init, START, END, 7, beam_size=1, length_penalty=0.6)
  np.testing.assert_array_equal(np.asarray(g.tokens), np.asarray(b.tokens))
  np.testing.assert_array_equal(np.asarray(g.lengths), np.asarray(b.lengths))
  np.testing.assert_allclose(np.asarray(g.scores), np.asarray(b.scores), rtol=1e-5)
  np.testing.assert_allclose(np.asarray(g.attention), np.asarray(b.attention), atol=1e-6)


@pytest.mark.parametrize('alpha', [pytest.param(0.0, marks=pytest.mark.slow), 1.0])
def test_wide_beam_finds_the_brute_force_optimum(alpha):
  max_len = 3
  p = _markov_params(4)
  init = _init(3, 5)
  res = decoding.beam_search(_make_step(p), init, START, END, max_len,
                             beam_size=V ** max_len, length_penalty=alpha)
  for b in range(3):
    _, seq, score = _brute_force(p, np.asarray(init[0][b]), max_len, alpha)
    n = int(res.lengths[b])
    assert tuple(np.asarray(res.tokens[b, :n]).tolist()) == seq
    np.testing.assert_allclose(float(res.scores[b]), score, rtol=1e-4)


@pytest.mark.slow
def test_beam_is_at_least_as_good_as_greedy_here():
  p = _markov_params(7)
  step = _make_step(p)
  init = _init(16, 8)
  g = decoding.greedy_decode(step, init, START, END, 6)
  b = decoding.beam_search(step, init, START, END, 6, beam_size=4)
  assert np.all(np.asarray(b.scores) >= np.asarray(g.scores) - 1e-5)


def test_decoding_compiles_once_per_shape():
  p = _markov_params()
  traces = {'n': 0}
  inner = _make_step(p)

  def step(state, ids):
    traces['n'] += 1  # runs only while tracing
    return inner(state, ids)

  greedy = jax.jit(lambda s: decoding.greedy_decode(step, s, START, END, 5))
  beam = jax.jit(lambda s: decoding.beam_search(step, s, START, END, 5, beam_size=3))
  greedy(_init(4, 1))
  after_first = traces['n']
  greedy(_init(4, 2))
  assert traces['n'] == after_first  # same shape: no retrace
  beam(_init(4, 1))
  after_beam = traces['n']
  beam(_init(4, 3))
  assert traces['n'] == after_beam
  greedy(_init(5, 1))
  assert traces['n'] > after_beam  # a new shape traces again
