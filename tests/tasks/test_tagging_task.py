"""Tagging task: targets, masked BCE, AUC metrics against scikit-learn, output files, tiny config."""

import json
import os
import sys

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as skm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from mir_jax.data import annotations  # pylint: disable=wrong-import-position
from mir_jax.data.datasets import Track  # pylint: disable=wrong-import-position
from mir_jax.tasks.tagging import TaggingTask, tag_metrics  # pylint: disable=wrong-import-position

TAGS = ('piano', 'drums', 'fast')
NUM_STEPS = 15


def test_targets_decode_write_round_trip(tmp_path):
  task = TaggingTask(tag_names=TAGS)
  track = Track('t', 'x.wav', tags=np.array([1, 0, 1], np.int8))
  frame_t, clip_t = task.targets_fn(track, 50, 25.0)
  assert frame_t == {} and float(clip_t['tags_valid']) == 1.0
  np.testing.assert_array_equal(clip_t['tags_target'], [1.0, 0.0, 1.0])
  logits = np.where(clip_t['tags_target'] > 0, 4.0, -4.0)
  probs = task.decode(logits, 25.0)
  path = task.write(probs, str(tmp_path), 'dir/song')
  ids, names, matrix = annotations.read_tags_csv(path)
  assert ids == ['song'] and tuple(names) == TAGS
  np.testing.assert_array_equal(matrix[0], track.tags)
  with open(os.path.join(str(tmp_path), 'dir', 'song.tags.json')) as f:
    scores = json.load(f)
  assert scores['piano'] == pytest.approx(1 / (1 + np.exp(-4.0)), abs=1e-6)


def test_untagged_track_and_wrong_width():
  task = TaggingTask(tag_names=TAGS)
  _, clip_t = task.targets_fn(Track('t', 'x.wav'), 10, 1.0)
  assert float(clip_t['tags_valid']) == 0.0
  with pytest.raises(ValueError, match='config.task.tag_names'):
    task.targets_fn(Track('t', 'x.wav', tags=np.zeros(4, np.int8)), 10, 1.0)
  with pytest.raises(ValueError, match='config.task.tag_names'):
    TaggingTask(tag_names=())


def test_loss_is_masked_bce():
  task = TaggingTask(tag_names=TAGS, pos_weight=2.0)
  rng = np.random.default_rng(2)
  logits = rng.normal(size=(3, 3)).astype(np.float32)
  target = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 1]], np.float32)
  batch = {'tags_target': target, 'tags_valid': np.array([1.0, 0.0, 1.0], np.float32),
           'mask': np.array([[True], [True], [False]])}  # row 1 untagged, row 2 padding
  loss, _ = task.loss(jnp.asarray(logits), batch)
  p = 1 / (1 + np.exp(-logits[0].astype(np.float64)))
  bce = -(target[0] * np.log(p) + (1 - target[0]) * np.log(1 - p))
  expected = np.sum(bce * (1 + target[0])) / 3  # positives weigh 2
  np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


def test_auc_by_hand_and_against_sklearn():
  # Positives score 0.9 and 0.3, negatives 0.8 and 0.1: 3 of 4 pairs ordered -> AUC 0.75.
  truth = np.array([[1], [0], [1], [0]])
  score = np.array([[0.9], [0.8], [0.3], [0.1]])
  got = tag_metrics(truth, score)
  assert got['roc_auc_macro'] == pytest.approx(0.75)
  # Precision at the two positives: 1/1 and 2/3 -> AP = (1 + 2/3) / 2.
  assert got['pr_auc_macro'] == pytest.approx((1 + 2 / 3) / 2)
  rng = np.random.default_rng(3)
  truth = (rng.random((30, 5)) < 0.4).astype(int)
  score = rng.random((30, 5)) + 0.5 * truth
  got = tag_metrics(truth, score)
  assert got['roc_auc_macro'] == pytest.approx(skm.roc_auc_score(truth, score, average='macro'))
  assert got['pr_auc_macro'] == pytest.approx(
      skm.average_precision_score(truth, score, average='macro'))


def test_auc_per_tag_group():
  # Instruments perfectly ranked, families exactly reversed; 'drums' alone gets no group entry.
  names = ('inst_piano', 'inst_violin', 'family_keys', 'family_strings', 'drums')
  truth = np.array([[1, 0, 1, 0, 1], [0, 1, 0, 1, 0], [1, 1, 0, 0, 1], [0, 0, 1, 1, 0]])
  score = np.where(truth > 0, 0.9, 0.1).astype(float)
  score[:, 2:4] = 1.0 - score[:, 2:4]
  got = tag_metrics(truth, score, names)
  assert got['roc_auc_inst'] == pytest.approx(1.0)
  assert got['roc_auc_family'] == pytest.approx(0.0)
  assert got['roc_auc_macro'] == pytest.approx((1 + 1 + 0 + 0 + 1) / 5)
  assert 'roc_auc_drums' not in got
  with pytest.raises(ValueError, match='tag names'):
    tag_metrics(truth, score, names[:3])


def test_metrics_skip_tags_without_both_classes():
  task = TaggingTask(tag_names=TAGS)
  tags = [np.array([1, 1, 0]), np.array([0, 1, 0]), np.array([1, 1, 0])]  # only 'piano' varies
  tracks = [Track(f't{i}', 'x.wav', tags=t) for i, t in enumerate(tags)]
  preds = [np.array([0.9, 0.1, 0.2]), np.array([0.2, 0.9, 0.8]), np.array([0.8, 0.5, 0.1])]
  got = task.metrics(preds + [np.zeros(3)], tracks + [Track('u', 'y.wav')])  # 'u' has no tags
  assert got['num_tags_scored'] == 1
  assert got['roc_auc_macro'] == pytest.approx(1.0)
  with pytest.raises(ValueError, match='both'):
    tag_metrics(np.ones((3, 2)), np.zeros((3, 2)))


def test_tiny_config_trains_with_falling_loss():
  from configs import tagging_crnn  # pylint: disable=g-import-not-at-top
  from mir_jax.train import experiment, loop  # pylint: disable=g-import-not-at-top
  config = tagging_crnn.get_config('tiny')
  task = experiment.build_task(config)
  assert task.num_outputs == len(config.task.tag_names) > 10
  model = experiment.build_model(config, task)
  fcfg = experiment.feature_config(config)
  frames, rng = int(config.data.crop_frames), np.random.default_rng(0)
  tags = (rng.random((4, task.num_outputs)) < 0.2).astype(np.float32)
  batch = {'features': rng.normal(size=(4, frames, fcfg.num_bins, fcfg.num_channels)).astype(np.float32),
           'mask': np.ones((4, frames), bool), 'lengths': np.full(4, frames, np.int32),
           'tags_target': tags, 'tags_valid': np.ones(4, np.float32)}
  trainer = loop.Trainer(config, model, task.loss, batch)
  state = trainer.init_state()
  losses = []
  for _ in range(NUM_STEPS):
    state, metrics = trainer.train_step(state, trainer.put_batch(batch))
    losses.append(float(metrics['loss']))
  assert np.all(np.isfinite(losses))
  # Warmup starts at learning rate 0; after it, the loss falls at every step.
  assert np.all(np.diff(losses[2:]) < 0)
  assert losses[-1] < 0.85 * losses[0]
