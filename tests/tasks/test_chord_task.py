"""Chord task: targets/decode round trip, loss, mir_eval-agreeing metrics, the tiny config."""

import os
import sys

import jax.numpy as jnp
import mir_eval
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from mir_jax.data import annotations  # pylint: disable=wrong-import-position
from mir_jax.data import vocab  # pylint: disable=wrong-import-position
from mir_jax.data.datasets import Track  # pylint: disable=wrong-import-position
from mir_jax.tasks.chord import ChordTask, chord_targets, frames_to_segments  # pylint: disable=wrong-import-position

FRAME_RATE = 10.0
REF_INTERVALS = np.array([[0.0, 0.52], [0.52, 2.31], [2.31, 3.0], [3.0, 4.77], [4.77, 6.0]])
REF_LABELS = ['N', 'C:maj', 'A:min', 'F#:maj', 'Bb:min']


def same_chords(a, b):
  """Label lists equal up to enharmonic spelling (by mir_eval's encoding)."""
  enc = lambda labels: [tuple(map(str, mir_eval.chord.encode(l))) for l in labels]  # pylint: disable=unnecessary-lambda-assignment
  return len(a) == len(b) and enc(a) == enc(b)


def one_hot_logits(classes, num_classes):
  logits = np.full((len(classes), num_classes), -5.0)
  logits[np.arange(len(classes)), classes] = 5.0
  return logits


@pytest.mark.parametrize('decoder', ['argmax', 'viterbi'])
def test_annotation_targets_decode_round_trip(decoder):
  task = ChordTask(decoder=decoder)
  num_frames = int(6.0 * FRAME_RATE)
  target = chord_targets(REF_INTERVALS, REF_LABELS, num_frames, FRAME_RATE)
  est_iv, est_lab = task.decode(one_hot_logits(target, task.num_outputs), FRAME_RATE)
  # Same chords in the same order, every boundary within one frame.
  assert same_chords(est_lab, REF_LABELS), est_lab
  assert np.abs(est_iv - REF_INTERVALS).max() <= 1.0 / FRAME_RATE + 1e-9
  scores = mir_eval.chord.evaluate(REF_INTERVALS, REF_LABELS, est_iv, est_lab)
  assert scores['majmin'] > 0.95


def test_targets_by_hand():
  target = chord_targets(np.array([[0.0, 0.25], [0.25, 0.45]]), ['G:7', 'X'], 6, 10.0)
  # frames at 0.0, 0.1, 0.2 -> G major (7 + 1 = 8); 0.3, 0.4 -> X (ignored); 0.5 -> unannotated
  np.testing.assert_array_equal(target, [8, 8, 8, -1, -1, -1])
  sevenths = chord_targets(np.array([[0.0, 0.5]]), ['G:7'], 3, 10.0, vocab='sevenths')
  np.testing.assert_array_equal(sevenths, [vocab.label_to_index('G:7', 'sevenths')] * 3)
  assert vocab.index_to_label(int(sevenths[0]), 'sevenths') == 'G:7'


def test_sevenths_round_trip():
  task = ChordTask(vocab='sevenths', decoder='argmax')
  assert task.num_outputs == 61
  intervals, labels = np.array([[0.0, 1.0], [1.0, 2.0]]), ['G:7', 'D:min7']
  target = chord_targets(intervals, labels, 20, FRAME_RATE, 'sevenths')
  est_iv, est_lab = task.decode(one_hot_logits(target, 61), FRAME_RATE)
  assert est_lab == labels
  np.testing.assert_allclose(est_iv, intervals)


def test_viterbi_removes_a_one_frame_blip():
  classes = np.array([1] * 10 + [5] + [1] * 10)
  logits = np.full((21, 25), 0.0)
  logits[np.arange(21), classes] = 2.0  # weak evidence: the blip is not worth a switch
  assert ChordTask(decoder='argmax').decode(logits, FRAME_RATE)[1] == ['C:maj', 'E:maj', 'C:maj']
  assert ChordTask(decoder='viterbi', self_transition=0.95).decode(logits, FRAME_RATE)[1] == ['C:maj']


def test_frames_to_segments_marks_ignored_frames_x():
  iv, labels = frames_to_segments(np.array([0, 0, -1, 13]), 2.0)
  np.testing.assert_allclose(iv, [[0.0, 1.0], [1.0, 1.5], [1.5, 2.0]])
  assert labels == ['N', 'X', 'C:min']


def test_loss_is_masked_cross_entropy():
  task = ChordTask()
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(2, 4, 25)).astype(np.float32)
  target = np.array([[3, -1, 0, 7], [24, 2, 2, 9]], np.int32)
  mask = np.array([[True, True, True, True], [True, True, False, False]])
  loss, aux = task.loss(jnp.asarray(logits), {'chord_target': target, 'mask': mask})
  logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  picks = [(0, 0), (0, 2), (0, 3), (1, 0), (1, 1)]  # real frames with a chord
  expected = -np.mean([logp[b, t, target[b, t]] for b, t in picks])
  np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
  assert float(aux['frames']) == 5


def test_metrics_agree_with_mir_eval_on_one_track():
  est_iv = np.array([[0.0, 1.0], [1.0, 2.5], [2.5, 6.0]])
  est_lab = ['C:maj', 'C:min', 'F#:maj']
  track = Track('t', 'x.wav', chord_intervals=REF_INTERVALS, chord_labels=REF_LABELS)
  got = ChordTask().metrics([(est_iv, est_lab)], [track])
  want = mir_eval.chord.evaluate(REF_INTERVALS, REF_LABELS, est_iv, est_lab)
  for name in ('root', 'majmin', 'mirex', 'sevenths', 'thirds', 'triads', 'tetrads'):
    assert got[name] == pytest.approx(want[name]), name
  assert 0.0 < got['majmin'] < 1.0


def test_metrics_pool_durations_over_tracks():
  # Track a: 10 s all right; track b: 30 s, right for the first 15 s only.
  a = Track('a', 'a.wav', chord_intervals=np.array([[0.0, 10.0]]), chord_labels=['C:maj'])
  b = Track('b', 'b.wav', chord_intervals=np.array([[0.0, 30.0]]), chord_labels=['A:min'])
  est_a = (np.array([[0.0, 10.0]]), ['C:maj'])
  est_b = (np.array([[0.0, 15.0], [15.0, 30.0]]), ['A:min', 'D:maj'])
  got = ChordTask().metrics([est_a, est_b], [a, b])
  assert got['majmin'] == pytest.approx((10 + 15) / 40)  # not the track mean 0.75


def test_write_reads_back(tmp_path):
  task = ChordTask()
  path = task.write((REF_INTERVALS, REF_LABELS), str(tmp_path / 'out'), 'sub/song')
  assert path.endswith(os.path.join('sub', 'song.lab'))
  intervals, labels = annotations.read_chord_lab(path)
  np.testing.assert_allclose(intervals, REF_INTERVALS)
  assert labels == REF_LABELS  # written verbatim


def test_bad_options_name_the_config_key():
  with pytest.raises(ValueError, match='config.task.vocab'):
    ChordTask(vocab='jazz')
  with pytest.raises(ValueError, match='config.task.decoder'):
    ChordTask(decoder='beam')


def test_tiny_config_trains_with_falling_loss():
  from configs import chord_crnn  # pylint: disable=g-import-not-at-top
  from mir_jax.train import experiment, loop  # pylint: disable=g-import-not-at-top
  config = chord_crnn.get_config('tiny')
  task = experiment.build_task(config)
  model = experiment.build_model(config, task)
  fcfg = experiment.feature_config(config)
  frames = int(config.data.crop_frames)
  rng = np.random.default_rng(0)
  # The 6 s reference squeezed onto the crop's frames (at 10 fps).
  intervals = REF_INTERVALS * (frames / FRAME_RATE) / 6.0
  tracks = [Track(f't{i}', 'x.wav', chord_intervals=intervals, chord_labels=REF_LABELS)
            for i in range(4)]
  batch = {'features': rng.normal(size=(4, frames, fcfg.num_bins, fcfg.num_channels)).astype(np.float32),
           'mask': np.ones((4, frames), bool), 'lengths': np.full(4, frames, np.int32),
           'chord_target': np.stack([task.targets_fn(t, frames, FRAME_RATE)[0]['chord_target'] for t in tracks])}
  trainer = loop.Trainer(config, model, task.loss, batch)
  state = trainer.init_state()
  losses = []
  for _ in range(10):
    state, metrics = trainer.train_step(state, trainer.put_batch(batch))
    losses.append(float(metrics['loss']))
  assert np.all(np.isfinite(losses))
  assert losses[-1] < 0.7 * losses[0]


@pytest.mark.slow
def test_tiny_config_end_to_end_train_eval_predict(tmp_path):
  """Renders the tiny synthetic sets, trains, evaluates with mir_eval and writes .lab files."""
  import json  # pylint: disable=g-import-not-at-top
  from configs import chord_crnn  # pylint: disable=g-import-not-at-top
  from mir_jax import predict  # pylint: disable=g-import-not-at-top
  from mir_jax.train import experiment  # pylint: disable=g-import-not-at-top
  config = chord_crnn.get_config('tiny')
  config.data.root = str(tmp_path / 'data')
  config.checkpoint.async_save = False
  config.train.tensorboard = False
  workdir = str(tmp_path / 'work')
  experiment.train_and_evaluate(config, workdir)
  rows = [json.loads(l) for l in open(os.path.join(workdir, 'metrics.jsonl'))]
  train_losses = [r['loss'] for r in rows if r['split'] == 'train']
  assert train_losses[-1] < train_losses[0]
  evals = [r for r in rows if r['split'] == 'eval']
  assert evals and 0.0 <= evals[-1]['majmin'] <= 1.0
  audio = os.path.join(experiment.dataset_dir(config, 'eval'), 'audio')
  written = predict.predict(config, workdir, audio, str(tmp_path / 'out'))
  assert len(written) == config.data.synth.num_eval
  intervals, labels = annotations.read_chord_lab(written[0])
  assert len(labels) >= 1 and intervals[0, 0] == 0.0
