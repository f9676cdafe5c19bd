"""Onset task: targets, weighted BCE, peak picking, metrics, writing; hand-made references."""

import os
import types

import jax.numpy as jnp
import mir_eval
import numpy as np
import pytest

from mir_jax.data.annotations import read_onsets
from mir_jax.tasks import build_task
from mir_jax.tasks.onset import OnsetTask, combine_onsets, onset_targets, peak_picking


def test_targets_with_widening():
  t = onset_targets(np.array([0.1, 0.52, 5.0]), 60, 100.0, widen=1, widen_value=0.5)
  expected = np.zeros(60, np.float32)
  expected[[9, 11, 51, 53]] = 0.5
  expected[[10, 52]] = 1.0  # 0.52 s -> frame 52; 5.0 s lies past the end
  np.testing.assert_array_equal(t, expected)
  np.testing.assert_array_equal(onset_targets(np.array([0.1]), 20, 100.0, widen=0), np.eye(20)[10])
  # Adjacent onsets: a widened neighbour never lowers a true onset frame.
  t = onset_targets(np.array([0.10, 0.11]), 20, 100.0, widen=1)
  assert t[10] == t[11] == 1.0 and t[9] == t[12] == 0.5


def test_targets_fn_signature_and_missing_onsets():
  task = OnsetTask(widen=0)
  frame, clip = task.targets_fn(types.SimpleNamespace(onsets=np.array([0.2])), 30, 50.0)
  assert clip == {} and frame['onset_target'].shape == (30,) and frame['onset_target'][10] == 1
  frame, _ = task.targets_fn(types.SimpleNamespace(onsets=None), 30, 50.0)
  assert not frame['onset_target'].any()


def test_weighted_bce_by_hand():
  task = OnsetTask(pos_weight=3.0)
  logits = jnp.array([[[0.0], [2.0], [-1.0], [5.0]]])
  target = jnp.array([[1.0, 0.0, 0.5, 1.0]])
  mask = jnp.array([[True, True, True, False]])
  loss, _ = task.loss(logits, {'onset_target': target, 'mask': mask})
  sig = lambda x: 1 / (1 + np.exp(-x))
  bce = lambda z, y: -(y * np.log(sig(z)) + (1 - y) * np.log(1 - sig(z)))
  w = np.array([3.0, 1.0, 2.0])  # 1 + (3 - 1) * target; the masked frame is out
  ref = (w * np.array([bce(0.0, 1), bce(2.0, 0), bce(-1.0, 0.5)])).sum() / w.sum()
  assert float(loss) == pytest.approx(ref, rel=1e-5)


def test_peak_picking_hand_cases():
  act = np.array([0, .2, .9, .3, 0, .6, .6, .1, .45, .8, .7, 0])
  # Threshold only: every frame above it.
  np.testing.assert_array_equal(peak_picking(act, 0.5), [2, 5, 6, 9, 10])
  # Local maxima over +-1 frame: the plateau gives both frames.
  np.testing.assert_array_equal(peak_picking(act, 0.5, pre_max=1, post_max=1), [2, 5, 6, 9])
  # A moving average raises the bar: 0.6 - mean(.. 0, .6, .6 ..) = 0.2 is not above 0.35.
  np.testing.assert_array_equal(
      peak_picking(act, 0.35, pre_max=1, post_max=1, pre_avg=1, post_avg=1), [2])
  smooth = peak_picking(np.eye(21)[10] + np.eye(21)[12], 0.2, smooth=5, pre_max=2, post_max=2)
  np.testing.assert_array_equal(smooth, [11])  # two close spikes merge into one peak


def test_combine_and_decode():
  np.testing.assert_allclose(combine_onsets(np.array([1.0, 1.02, 1.05, 1.2]), 0.03), [1.0, 1.05, 1.2])
  task = OnsetTask(threshold=0.5, pre_max=0.01, post_max=0.01, combine=0.03)
  logits = np.full((100, 1), -6.0)
  logits[[20, 21, 50, 80], 0] = [4.0, 4.0, 3.0, 0.1]  # 0.1 -> sigmoid 0.52 > 0.5
  np.testing.assert_allclose(task.decode(logits, 100.0), [0.20, 0.50, 0.80])


def test_metrics_match_mir_eval_and_write(tmp_path):
  task = build_task({'name': 'onset'})
  tracks = [types.SimpleNamespace(onsets=np.array([1.0, 2.0, 3.0])),
            types.SimpleNamespace(onsets=np.array([0.5]))]
  preds = [np.array([1.03, 2.0, 4.0]), np.array([0.52])]
  m = task.metrics(preds, tracks)
  f50 = np.mean([mir_eval.onset.f_measure(t.onsets, p, window=0.05)[0] for t, p in zip(tracks, preds)])
  f25 = np.mean([mir_eval.onset.f_measure(t.onsets, p, window=0.025)[0] for t, p in zip(tracks, preds)])
  assert m['f_measure_50ms'] == pytest.approx(f50) and m['f_measure_25ms'] == pytest.approx(f25)
  assert m['f_measure_50ms'] == pytest.approx((2 / 3 + 1) / 2)  # by hand: 2 of 3 hits, 1 of 1
  path = task.write(np.array([0.25, 1.5]), str(tmp_path), 'sub/track')
  assert path == os.path.join(str(tmp_path), 'sub', 'track.onsets')
  np.testing.assert_allclose(read_onsets(path), [0.25, 1.5])


def test_bad_config_names_the_key():
  with pytest.raises(ValueError, match='config.task.name'):
    build_task({'name': 'beats'})
  with pytest.raises(ValueError, match="config.task for 'onset'"):
    build_task({'name': 'onset', 'treshold': 0.3})
