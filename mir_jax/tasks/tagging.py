"""Music auto-tagging: multi-label sigmoid classification of whole clips.

Targets: the track's 0/1 tag vector (aligned with ``config.task.tag_names``,
the columns of the dataset's ``tags.csv``) plus a 0/1 weight saying whether the
track has tags at all. Loss: sigmoid binary cross-entropy averaged over tags
and real, tagged rows. Decoding: per-tag probabilities (mean logit over any
leading chunk axis, then sigmoid). Output: ``<track>.tags.csv`` (the tags CSV
format, one row, 1 where the probability reaches ``threshold``) and
``<track>.tags.json`` (every tag's probability). Metrics (scikit-learn): macro
ROC-AUC and PR-AUC (average precision) over the tags that have both a positive
and a negative track in the evaluation set (the others have no defined AUC).
"""

from __future__ import annotations

import json
import os
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mir_jax.tasks.base import Task
from mir_jax.tasks.key import clip_logits, real_rows

TARGET_KEY = 'tags_target'
VALID_KEY = 'tags_valid'


def tag_group(name: str) -> str:
  """The group a tag name belongs to: the part before its first '_' ('inst_violin' -> 'inst')."""
  return name.split('_', 1)[0]


def tag_metrics(y_true: np.ndarray, y_score: np.ndarray,
                tag_names: Sequence[str] = ()) -> dict[str, float]:
  """Macro ROC-AUC / PR-AUC over the columns of (N, K) arrays that have both classes.

  Given ``tag_names``, also ``roc_auc_<group>`` per :func:`tag_group` of two or
  more scored tags (e.g. instruments vs families vs tempo), so a macro figure
  can be read by what makes it.
  """
  from sklearn import metrics as skm  # pylint: disable=g-import-not-at-top
  y_true = np.asarray(y_true).astype(np.int64)
  y_score = np.asarray(y_score, np.float64)
  if y_true.shape != y_score.shape or y_true.ndim != 2:
    raise ValueError(f'tag truth {y_true.shape} and scores {y_score.shape} must be equal (N, K)')
  positives = y_true.sum(axis=0)
  scored = np.flatnonzero((positives > 0) & (positives < y_true.shape[0]))
  if scored.size == 0:
    raise ValueError('no tag has both positive and negative evaluation tracks: AUC undefined')
  t, s = y_true[:, scored], y_score[:, scored]
  out = {'roc_auc_macro': float(skm.roc_auc_score(t, s, average='macro')),
         'pr_auc_macro': float(skm.average_precision_score(t, s, average='macro')),
         'num_tags_scored': float(scored.size)}
  if len(tag_names):
    if len(tag_names) != y_true.shape[1]:
      raise ValueError(f'{len(tag_names)} tag names for {y_true.shape[1]} tag columns')
    groups: dict[str, list[int]] = {}
    for column in scored:
      groups.setdefault(tag_group(tag_names[column]), []).append(int(column))
    for group, columns in sorted(groups.items()):
      if len(columns) > 1:
        out[f'roc_auc_{group}'] = float(skm.roc_auc_score(y_true[:, columns], y_score[:, columns],
                                                          average='macro'))
  return out


class TaggingTask(Task):
  """Multi-label clip tagging; see the module docstring.

  Args:
    tag_names: the tag vocabulary, in the order of the dataset's tag vectors.
    threshold: probability at which a tag is written as present.
    pos_weight: loss weight of positive labels (tags are sparse).
  """
  name = 'tagging'
  output_kind = 'clip'
  best_metric = 'roc_auc_macro'
  best_mode = 'max'
  annotation = 'tags'
  output_suffix = '.tags.csv'

  def __init__(self, *, tag_names: Sequence[str] = (), threshold: float = 0.5,
               pos_weight: float = 1.0):
    tag_names = tuple(str(t) for t in tag_names)
    if not tag_names:
      raise ValueError('config.task.tag_names is empty: list the tags (the columns of tags.csv)')
    if len(set(tag_names)) != len(tag_names):
      raise ValueError('config.task.tag_names has duplicates')
    if not 0.0 < threshold < 1.0 or pos_weight <= 0:
      raise ValueError(f'config.task.threshold must be in (0, 1) and pos_weight > 0, got '
                       f'{threshold}, {pos_weight}')
    self.tag_names, self.threshold, self.pos_weight = tag_names, float(threshold), float(pos_weight)
    self.num_outputs = len(tag_names)

  def targets_fn(self, track, num_frames: int, frame_rate: float):
    if track.tags is None:
      return {}, {TARGET_KEY: np.zeros(self.num_outputs, np.float32),
                  VALID_KEY: np.float32(0.0)}
    tags = np.asarray(track.tags, np.float32).reshape(-1)
    if tags.size != self.num_outputs:
      raise ValueError(f'track {track.track_id!r} has {tags.size} tags but config.task.tag_names '
                       f'has {self.num_outputs}')
    return {}, {TARGET_KEY: tags, VALID_KEY: np.float32(1.0)}

  def loss(self, logits, batch: Mapping[str, jax.Array]):
    target = batch[TARGET_KEY].astype(jnp.float32)
    row = (real_rows(batch) & (batch[VALID_KEY] > 0)).astype(jnp.float32)
    bce = optax.sigmoid_binary_cross_entropy(logits.astype(jnp.float32), target)
    weight = row[:, None] * (1.0 + (self.pos_weight - 1.0) * target)
    loss = (bce * weight).sum() / jnp.maximum(row.sum() * self.num_outputs, 1.0)
    return loss, {'clips': row.sum()}

  def decode(self, logits: np.ndarray, frame_rate: float) -> np.ndarray:
    """(num_tags,) float64 tag probabilities of one track."""
    return 1.0 / (1.0 + np.exp(-clip_logits(logits, self.num_outputs)))

  def write(self, prediction: np.ndarray, out_dir: str, track_id: str) -> str:
    from mir_jax.data import annotations  # pylint: disable=g-import-not-at-top
    path = os.path.join(out_dir, track_id + self.output_suffix)
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    probs = np.asarray(prediction, np.float64).reshape(-1)
    annotations.write_tags_csv(path, [os.path.basename(track_id)], self.tag_names,
                               (probs >= self.threshold)[None].astype(np.int8))
    scores = {name: round(float(p), 6) for name, p in zip(self.tag_names, probs)}
    annotations.atomic_write_text(os.path.join(out_dir, track_id + '.tags.json'),
                                  json.dumps(scores, indent=1) + '\n')
    return path

  def metrics(self, predictions: Sequence[np.ndarray], tracks: Sequence) -> dict[str, float]:
    if len(predictions) != len(tracks):
      raise ValueError(f'{len(predictions)} predictions for {len(tracks)} tracks')
    pairs = [(t.tags, p) for p, t in zip(predictions, tracks) if t.tags is not None]
    if not pairs:
      raise ValueError('no evaluation track has tags')
    truth, scores = zip(*pairs)
    return tag_metrics(np.stack(truth), np.stack(scores), self.tag_names)
