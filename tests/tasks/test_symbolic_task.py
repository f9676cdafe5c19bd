"""The symbolic reversal task: batches are right, a tiny model learns, attention helps."""

import numpy as np
import pytest

from mir_jax.tasks import symbolic


def test_batches_hold_the_reversed_sequence():
  b = symbolic.make_batch(np.random.default_rng(0), 16, 2, 9, num_symbols=5)
  for i in range(16):
    n = int(b['lengths'][i])
    src = b['source'][i, :n]
    assert np.all(src >= symbolic.NUM_SPECIAL) and np.all(b['source'][i, n:] == symbolic.PAD)
    np.testing.assert_array_equal(b['targets_out'][i, :n], src[::-1])
    assert b['targets_out'][i, n] == symbolic.END
    np.testing.assert_array_equal(b['targets_in'][i, 1:n + 1], src[::-1])
    assert b['targets_in'][i, 0] == symbolic.START
    assert b['target_mask'][i].sum() == n + 1
    np.testing.assert_array_equal(b['features'][i, :n].argmax(-1), src)
    assert np.all(b['features'][i, n:] == 0)
  s = symbolic.make_batch(np.random.default_rng(0), 4, 3, 5, num_symbols=5, task='sort')
  for i in range(4):
    n = int(s['lengths'][i])
    np.testing.assert_array_equal(s['targets_out'][i, :n], np.sort(s['source'][i, :n]))


def test_sequence_accuracy_counts_exact_matches_up_to_the_end():
  ref = np.array([[5, 4, 2, 0], [3, 2, 0, 0]])
  pred = np.array([[5, 4, 2, 7], [3, 4, 2, 0]])  # after </s> anything goes
  assert symbolic.sequence_accuracy(pred, ref) == 0.5


def test_tiny_model_learns_to_reverse_short_sequences():
  model = symbolic.tiny_model(num_symbols=8)
  variables, history = symbolic.train(model, steps=200, batch_size=64, min_len=2, max_len=6,
                                      num_symbols=8, learning_rate=5e-3, seed=0,
                                      time_limit_s=60)
  assert history[-1]['loss'] < history[0]['loss'] / 10
  held_out = symbolic.make_batch(np.random.default_rng(1234), 200, 2, 6, num_symbols=8)
  greedy = symbolic.evaluate(model, variables, held_out, method='greedy')
  beam = symbolic.evaluate(model, variables, held_out, method='beam', beam_size=4)
  assert greedy['sequence_accuracy'] >= 0.9
  assert beam['sequence_accuracy'] >= greedy['sequence_accuracy']
  assert beam['mean_score'] >= greedy['mean_score'] - 1e-4


@pytest.mark.slow
def test_attention_beats_no_attention_on_long_sequences():
  results = {}
  held_out = symbolic.make_batch(np.random.default_rng(99), 256, 16, 20, num_symbols=10)
  for kind in ('additive', 'none'):
    model = symbolic.tiny_model(num_symbols=10, attention=kind)
    variables, _ = symbolic.train(model, steps=1500, batch_size=64, min_len=16, max_len=20,
                                  num_symbols=10, learning_rate=3e-3, seed=0)
    results[kind] = symbolic.evaluate(model, variables, held_out)['sequence_accuracy']
  assert results['additive'] >= 0.9
  assert results['additive'] >= results['none'] + 0.4, results


def test_symbolic_script_follows_its_config(tmp_path):
  """experiments/symbolic.py trains the kinds its config names and writes their accuracies."""
  import json  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  out = tmp_path / 'sym.json'
  proc = subprocess.run(
      [sys.executable, os.path.join(root, 'experiments', 'symbolic.py'),
       '--config=' + os.path.join(root, 'configs', 'symbolic', 'reverse.py') + ':tiny',
       "--config.compare_attention=('additive',)", '--config.eval.beam_size=2',
       f'--json={out}'], capture_output=True, text=True, cwd=root, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  saved = json.loads(out.read_text())
  assert list(saved['results']) == ['additive']
  scores = saved['results']['additive']
  assert scores['greedy_sequence_accuracy'] >= 0.9
  assert scores['beam2_sequence_accuracy'] >= scores['greedy_sequence_accuracy'] - 0.02
  assert saved['config']['eval']['beam_size'] == 2
