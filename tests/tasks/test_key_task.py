"""Key task: targets/decode round trip, masked loss, metrics against mir_eval, the tiny config."""

import os
import sys

import jax.numpy as jnp
import mir_eval
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from mir_jax.data import annotations  # pylint: disable=wrong-import-position
from mir_jax.data.datasets import Track  # pylint: disable=wrong-import-position
from mir_jax.tasks.key import KeyTask  # pylint: disable=wrong-import-position


@pytest.mark.parametrize('key', ['C major', 'F# minor', 'Bb major', 'B minor', 'Eb minor'])
def test_annotation_target_decode_round_trip(key):
  task = KeyTask()
  frame_t, clip_t = task.targets_fn(Track('t', 'x.wav', key=key), 100, 10.0)
  assert frame_t == {}
  target = int(clip_t['key_target'])
  logits = np.zeros(24)
  logits[target] = 3.0
  decoded = task.decode(logits, 10.0)
  assert mir_eval.key.weighted_score(key, decoded) == 1.0  # same key, maybe respelled
  # Chunks of one long track: the mean logit decides.
  chunks = np.stack([logits, logits + np.eye(24)[(target + 1) % 24] * 2.0])
  assert mir_eval.key.weighted_score(key, task.decode(chunks, 10.0)) == 1.0


def test_targets_by_hand():
  task = KeyTask()
  get = lambda k: int(task.targets_fn(Track('t', 'x.wav', key=k), 5, 1.0)[1]['key_target'])  # pylint: disable=unnecessary-lambda-assignment
  assert get('C major') == 0 and get('A minor') == 21 and get('F# minor') == 18
  assert get('X') == -1 and get(None) == -1 and get('D other') == -1


def test_decode_rejects_wrong_width():
  with pytest.raises(ValueError, match='24'):
    KeyTask().decode(np.zeros(25), 10.0)


def test_loss_masks_unlabelled_and_padded_rows():
  task = KeyTask()
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(4, 24)).astype(np.float32)
  batch = {'key_target': np.array([3, -1, 20, 5], np.int32),
           'mask': np.array([[True, True], [True, False], [True, False], [False, False]])}
  loss, aux = task.loss(jnp.asarray(logits), batch)
  logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  expected = -(logp[0, 3] + logp[2, 20]) / 2  # row 1 has no key, row 3 is padding
  np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
  assert float(aux['clips']) == 2


def test_metrics_match_mir_eval_and_hand_values():
  refs = ['C major', 'C major', 'C major', 'A minor', 'C major', 'E minor']
  ests = ['C major', 'G major', 'A minor', 'C major', 'C minor', 'F major']
  hand = [1.0, 0.5, 0.3, 0.3, 0.2, 0.0]  # exact, fifth, relative x2, parallel, other
  tracks = [Track(f't{i}', 'x.wav', key=k) for i, k in enumerate(refs)] + [
      Track('unknown', 'x.wav', key='X')]  # no major/minor class: left out
  got = KeyTask().metrics(ests + ['D major'], tracks)
  assert [mir_eval.key.weighted_score(r, e) for r, e in zip(refs, ests)] == pytest.approx(hand)
  assert got['weighted_score'] == pytest.approx(np.mean(hand))
  assert got['accuracy'] == pytest.approx(1 / 6)


def test_write_reads_back(tmp_path):
  path = KeyTask().write('F# minor', str(tmp_path), 'a/b')
  assert path == os.path.join(str(tmp_path), 'a', 'b.key')
  assert annotations.read_key(path) == 'F# minor'


def test_tiny_config_trains_with_falling_loss():
  from configs import key_cnn  # pylint: disable=g-import-not-at-top
  from mir_jax.train import experiment, loop  # pylint: disable=g-import-not-at-top
  config = key_cnn.get_config('tiny')
  assert config.model.aggregation == 'mean'
  task = experiment.build_task(config)
  model = experiment.build_model(config, task)
  fcfg = experiment.feature_config(config)
  frames, rng = int(config.data.crop_frames), np.random.default_rng(0)
  keys = ['C major', 'A minor', 'F# major', 'Eb minor']
  batch = {'features': rng.normal(size=(4, frames, fcfg.num_bins, fcfg.num_channels)).astype(np.float32),
           'mask': np.ones((4, frames), bool), 'lengths': np.full(4, frames, np.int32),
           'key_target': np.stack([task.targets_fn(Track('t', 'x', key=k), frames, 5.0)[1]['key_target']
                                   for k in keys])}
  trainer = loop.Trainer(config, model, task.loss, batch)
  state = trainer.init_state()
  losses = []
  for _ in range(10):
    state, metrics = trainer.train_step(state, trainer.put_batch(batch))
    losses.append(float(metrics['loss']))
  assert np.all(np.isfinite(losses))
  assert losses[-1] < 0.7 * losses[0]
