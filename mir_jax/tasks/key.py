"""Global key estimation as 24-way clip classification (12 tonics x major/minor).

Targets: one class per track (``mir_jax.data.vocab.key_to_index``); a key
without a major/minor class (``X``, modal keys) gets ``IGNORE_INDEX`` and is
left out of the loss and the metrics. Loss: softmax cross-entropy over the
clip logits of real rows. Decoding: the mean logit over any leading axes
(chunks of a long track), then argmax. Metrics: the mean of
``mir_eval.key.weighted_score`` (1 exact, 0.5 fifth, 0.3 relative, 0.2
parallel) and the exact accuracy over tracks.
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import mir_eval
import numpy as np
import optax

from mir_jax.data import vocab as vocab_lib
from mir_jax.tasks.base import Task

TARGET_KEY = 'key_target'


def key_target(key: str | None) -> np.int32:
  """Class index of a mir_eval key string; ``IGNORE_INDEX`` when it has none."""
  if key is None:
    return np.int32(vocab_lib.IGNORE_INDEX)
  try:
    return np.int32(vocab_lib.key_to_index(key))
  except vocab_lib.VocabularyError:
    return np.int32(vocab_lib.IGNORE_INDEX)


def clip_logits(logits: np.ndarray, num_outputs: int) -> np.ndarray:
  """(num_outputs,) logits of one track from (K,) or (..., K) (averaged over chunks)."""
  logits = np.asarray(logits, np.float64)
  if logits.ndim == 0 or logits.shape[-1] != num_outputs:
    raise ValueError(f'clip logits must end in {num_outputs} classes, got shape {logits.shape}')
  return logits.reshape(-1, num_outputs).mean(axis=0)


def real_rows(batch: Mapping[str, jax.Array]) -> jax.Array:
  """(B,) True for rows that hold a track (eval batches are padded with empty rows)."""
  return batch['mask'].any(axis=1)


class KeyTask(Task):
  """Clip-level key classification; see the module docstring.

  Args:
    label_smoothing: optax label smoothing of the cross-entropy targets.
  """
  name = 'key'
  num_outputs = vocab_lib.NUM_KEYS
  output_kind = 'clip'
  best_metric = 'weighted_score'
  best_mode = 'max'
  annotation = 'key'
  output_suffix = '.key'

  def __init__(self, *, label_smoothing: float = 0.0):
    if not 0.0 <= label_smoothing < 1.0:
      raise ValueError(f'config.task.label_smoothing must be in [0, 1), got {label_smoothing}')
    self.label_smoothing = float(label_smoothing)

  def targets_fn(self, track, num_frames: int, frame_rate: float):
    return {}, {TARGET_KEY: key_target(track.key)}

  def loss(self, logits, batch: Mapping[str, jax.Array]):
    target = batch[TARGET_KEY].astype(jnp.int32)
    valid = real_rows(batch) & (target >= 0)
    onehot = jax.nn.one_hot(jnp.where(valid, target, 0), self.num_outputs, dtype=jnp.float32)
    if self.label_smoothing > 0:
      onehot = optax.smooth_labels(onehot, self.label_smoothing)
    ce = optax.softmax_cross_entropy(logits.astype(jnp.float32), onehot)
    weight = valid.astype(jnp.float32)
    count = jnp.maximum(weight.sum(), 1.0)
    correct = (jnp.argmax(logits, -1) == target) * weight
    return (ce * weight).sum() / count, {'clips': weight.sum(), 'accuracy': correct.sum() / count}

  def decode(self, logits: np.ndarray, frame_rate: float) -> str:
    """The key string (``'F# minor'``) of one track's logits."""
    return vocab_lib.index_to_key(int(np.argmax(clip_logits(logits, self.num_outputs))))

  def write(self, prediction: str, out_dir: str, track_id: str) -> str:
    from mir_jax.data.annotations import write_key  # pylint: disable=g-import-not-at-top
    path = os.path.join(out_dir, track_id + self.output_suffix)
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    write_key(path, prediction)
    return path

  def metrics(self, predictions: Sequence[str], tracks: Sequence) -> dict[str, float]:
    if len(predictions) != len(tracks):
      raise ValueError(f'{len(predictions)} predictions for {len(tracks)} tracks')
    scores, exact = [], []
    for est, track in zip(predictions, tracks):
      if key_target(track.key) < 0:
        continue
      scores.append(mir_eval.key.weighted_score(track.key, est))
      exact.append(float(vocab_lib.key_to_index(est) == vocab_lib.key_to_index(track.key)))
    if not scores:
      raise ValueError('no evaluation track has a major/minor key annotation')
    return {'weighted_score': float(np.mean(scores)), 'accuracy': float(np.mean(exact))}
