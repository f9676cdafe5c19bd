"""Chord recognition as frame-wise classification over a chord vocabulary.

Targets: the class (``mir_jax.data.vocab``, ``majmin`` 25 classes or
``sevenths`` 61) of the chord sounding at each frame's centre time
``i / frame_rate``; frames outside the annotation or labelled ``X`` get
``IGNORE_INDEX`` and are left out of the loss. Loss: softmax cross-entropy
over valid frames. Decoding: per-frame posteriors, optionally smoothed by a
Viterbi pass with a self-transition prior (``librosa.sequence``), argmax, and
runs of equal frames merged into ``(start, end, label)`` segments. Metrics:
``mir_eval.chord`` comparisons (root, majmin, mirex, sevenths, ...) as
weighted chord symbol recall: every track's comparison durations are pooled,
so a long track counts more than a short one (the MIREX convention).
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

TARGET_KEY = 'chord_target'

#: mir_eval comparisons reported (weighted over the whole dataset).
COMPARISONS = ('root', 'majmin', 'mirex', 'sevenths', 'thirds', 'triads', 'tetrads')


def chord_targets(intervals: np.ndarray, labels: Sequence[str], num_frames: int,
                  frame_rate: float, vocab: str = 'majmin') -> np.ndarray:
  """(num_frames,) int32 class of the chord at each frame centre (``IGNORE_INDEX`` if none).

  An instant on a boundary belongs to the segment that starts there.
  """
  intervals = np.asarray(intervals, np.float64).reshape(-1, 2)
  if len(intervals) != len(labels):
    raise ValueError(f'{len(intervals)} chord intervals but {len(labels)} labels')
  target = np.full(num_frames, vocab_lib.IGNORE_INDEX, np.int32)
  times = np.arange(num_frames) / float(frame_rate)
  for (start, end), label in zip(intervals, labels):
    # Later segments overwrite a shared boundary frame, so it takes the new chord.
    sel = (times >= start) & (times < end)
    target[sel] = vocab_lib.label_to_index(label, vocab)
  return target


def frames_to_segments(classes: np.ndarray, frame_rate: float,
                       vocab: str = 'majmin') -> tuple[np.ndarray, list[str]]:
  """Merges runs of equal frame classes into ``(intervals (N, 2) seconds, labels)``.

  Frame ``i`` covers ``[i, i + 1) / frame_rate``; ``IGNORE_INDEX`` frames become ``X``.
  """
  classes = np.asarray(classes).reshape(-1)
  if classes.size == 0:
    return np.zeros((0, 2)), []
  change = np.flatnonzero(np.diff(classes)) + 1
  starts = np.concatenate([[0], change])
  ends = np.concatenate([change, [classes.size]])
  intervals = np.stack([starts, ends], axis=1) / float(frame_rate)
  labels = [vocab_lib.index_to_label(int(classes[s]), vocab) for s in starts]
  return intervals, labels


def _pooled_comparisons(references, estimates) -> dict[str, float]:
  """Duration-weighted ``mir_eval.chord`` scores pooled over tracks.

  Each track is prepared exactly as ``mir_eval.chord.evaluate`` does (the
  estimate is cropped/padded with ``N`` to the reference span, then both are
  cut at the union of boundaries); the comparison durations of all tracks are
  then summed, which for one track gives ``evaluate``'s numbers.
  """
  num = {c: 0.0 for c in COMPARISONS}
  den = {c: 0.0 for c in COMPARISONS}
  for (ref_iv, ref_lab), (est_iv, est_lab) in zip(references, estimates):
    ref_iv = np.asarray(ref_iv, np.float64).reshape(-1, 2)
    est_iv = np.asarray(est_iv, np.float64).reshape(-1, 2)
    if len(est_lab) == 0:
      est_iv, est_lab = np.array([[ref_iv.min(), ref_iv.max()]]), ['N']
    est_iv, est_lab = mir_eval.util.adjust_intervals(
        est_iv, list(est_lab), ref_iv.min(), ref_iv.max(), mir_eval.chord.NO_CHORD,
        mir_eval.chord.NO_CHORD)
    intervals, r, e = mir_eval.util.merge_labeled_intervals(ref_iv, list(ref_lab), est_iv, est_lab)
    durations = mir_eval.util.intervals_to_durations(intervals)
    for name in COMPARISONS:
      comp = np.asarray(getattr(mir_eval.chord, name)(r, e), np.float64)
      valid = comp >= 0  # -1 marks reference chords outside the comparison's vocabulary
      num[name] += float(np.sum(comp[valid] * durations[valid]))
      den[name] += float(np.sum(durations[valid]))
  return {name: (num[name] / den[name] if den[name] > 0 else 0.0) for name in COMPARISONS}


class ChordTask(Task):
  """Frame-wise chord recognition; see the module docstring.

  Args:
    vocab: 'majmin' (25 classes) or 'sevenths' (61).
    decoder: 'argmax' (frame-wise) or 'viterbi' (smoothed by a self-transition prior).
    self_transition: Viterbi probability of staying in the same chord from
      one frame to the next (higher = fewer, longer segments).
    label_smoothing: optax label smoothing of the cross-entropy targets.
  """
  name = 'chord'
  output_kind = 'frame'
  best_metric = 'majmin'
  best_mode = 'max'
  annotation = 'chord_labels'
  output_suffix = '.lab'

  def __init__(self, *, vocab: str = 'majmin', decoder: str = 'viterbi',
               self_transition: float = 0.9, label_smoothing: float = 0.0):
    if vocab not in vocab_lib.VOCABULARIES:
      raise ValueError(f'config.task.vocab={vocab!r} is not one of {vocab_lib.VOCABULARIES}')
    if decoder not in ('argmax', 'viterbi'):
      raise ValueError(f"config.task.decoder={decoder!r} is not 'argmax' or 'viterbi'")
    if not 0.0 < self_transition < 1.0:
      raise ValueError(f'config.task.self_transition must be in (0, 1), got {self_transition}')
    if not 0.0 <= label_smoothing < 1.0:
      raise ValueError(f'config.task.label_smoothing must be in [0, 1), got {label_smoothing}')
    self.vocab, self.decoder = vocab, decoder
    self.self_transition, self.label_smoothing = float(self_transition), float(label_smoothing)
    self.num_outputs = vocab_lib.num_classes(vocab)

  def targets_fn(self, track, num_frames: int, frame_rate: float):
    if track.chord_labels is None:
      return {TARGET_KEY: np.full(num_frames, vocab_lib.IGNORE_INDEX, np.int32)}, {}
    return {TARGET_KEY: chord_targets(track.chord_intervals, track.chord_labels, num_frames,
                                      frame_rate, self.vocab)}, {}

  def loss(self, logits, batch: Mapping[str, jax.Array]):
    target = batch[TARGET_KEY].astype(jnp.int32)
    valid = batch['mask'] & (target >= 0)
    safe = jnp.where(valid, target, 0)
    onehot = jax.nn.one_hot(safe, self.num_outputs, dtype=jnp.float32)
    if self.label_smoothing > 0:
      onehot = optax.smooth_labels(onehot, self.label_smoothing)
    ce = optax.softmax_cross_entropy(logits.astype(jnp.float32), onehot)
    weight = valid.astype(jnp.float32)
    loss = (ce * weight).sum() / jnp.maximum(weight.sum(), 1.0)
    correct = (jnp.argmax(logits, -1) == target) * weight
    return loss, {'frames': weight.sum(),
                  'frame_accuracy': correct.sum() / jnp.maximum(weight.sum(), 1.0)}

  def frame_classes(self, logits: np.ndarray) -> np.ndarray:
    """(T,) class per frame from (T, K) logits, by argmax or Viterbi."""
    logits = np.asarray(logits, np.float64)
    if logits.ndim != 2 or logits.shape[1] != self.num_outputs:
      raise ValueError(f'chord logits must be (frames, {self.num_outputs}), got {logits.shape}')
    if self.decoder == 'argmax' or logits.shape[0] < 2:
      return np.argmax(logits, axis=1)
    import librosa  # pylint: disable=g-import-not-at-top
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    transition = librosa.sequence.transition_loop(self.num_outputs, self.self_transition)
    return librosa.sequence.viterbi_discriminative(probs.T, transition)

  def decode(self, logits: np.ndarray, frame_rate: float) -> tuple[np.ndarray, list[str]]:
    """``(intervals (N, 2) seconds, labels)`` from one track's (T, K) logits."""
    return frames_to_segments(self.frame_classes(logits), frame_rate, self.vocab)

  def write(self, prediction, out_dir: str, track_id: str) -> str:
    from mir_jax.data.annotations import write_chord_lab  # pylint: disable=g-import-not-at-top
    path = os.path.join(out_dir, track_id + self.output_suffix)
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    write_chord_lab(path, *prediction)
    return path

  def metrics(self, predictions: Sequence, tracks: Sequence) -> dict[str, float]:
    if len(predictions) != len(tracks):
      raise ValueError(f'{len(predictions)} predictions for {len(tracks)} tracks')
    pairs = [((t.chord_intervals, t.chord_labels), p) for p, t in zip(predictions, tracks)
             if t.chord_labels is not None and len(t.chord_labels)]
    if not pairs:
      raise ValueError('no evaluation track has chord annotations')
    refs, ests = zip(*pairs)
    return _pooled_comparisons(refs, ests)
