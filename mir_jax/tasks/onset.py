"""Onset detection as frame-wise binary classification (Böck & Schedl's BLSTM recipe).

Targets: 1 at the frame nearest each annotated onset, optionally widened to
``widen`` neighbouring frames on each side with the soft value ``widen_value``
(annotations are only accurate to a frame or two). Loss: binary cross-entropy
with positive frames weighted by ``pos_weight`` (onsets are rare). Decoding:
sigmoid, then peak picking as madmom's ``OnsetPeakPickingProcessor`` does
offline (smoothing, moving maximum, moving average + threshold, combining
onsets closer than ``combine`` seconds). Metrics: ``mir_eval.onset.f_measure``
at ±50 ms and ±25 ms, averaged over tracks.
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import mir_eval
import numpy as np
import optax
from scipy import ndimage

from mir_jax.tasks.base import Task

TARGET_KEY = 'onset_target'


def onset_targets(onsets: np.ndarray, num_frames: int, frame_rate: float, widen: int = 0,
                  widen_value: float = 0.5) -> np.ndarray:
  """(num_frames,) float32: 1 at onset frames, ``widen_value`` within ``widen`` frames."""
  target = np.zeros(num_frames, np.float32)
  frames = np.round(np.asarray(onsets, np.float64) * frame_rate).astype(np.int64)
  frames = frames[(frames >= 0) & (frames < num_frames)]
  for offset in range(1, int(widen) + 1):
    for f in (frames - offset, frames + offset):
      f = f[(f >= 0) & (f < num_frames)]
      target[f] = np.maximum(target[f], widen_value)
  target[frames] = 1.0
  return target


def peak_picking(activations: np.ndarray, threshold: float, *, smooth: int = 0, pre_avg: int = 0,
                 post_avg: int = 0, pre_max: int = 0, post_max: int = 0) -> np.ndarray:
  """Frame indices of peaks, like ``madmom.features.onsets.peak_picking`` (1-D).

  A frame is a peak when it equals the maximum over ``[i - pre_max, i + post_max]``
  and exceeds the mean over ``[i - pre_avg, i + post_avg]`` by ``threshold``.
  ``smooth`` > 1 first convolves with a Hamming window of that many frames,
  normalised to sum 1 (madmom does not normalise; normalising keeps the
  threshold on the activation scale). Runs of equal maxima give every frame
  of the run, as in madmom; :func:`combine_onsets` merges them.
  """
  act = np.asarray(activations, np.float64)
  if act.ndim != 1:
    raise ValueError(f'activations must be 1-D, got shape {act.shape}')
  if smooth > 1:
    kernel = np.hamming(smooth)
    act = np.convolve(act, kernel / kernel.sum(), 'same')
  avg_len = pre_avg + post_avg + 1
  if avg_len > 1:
    origin = int(np.floor((pre_avg - post_avg) / 2))
    mov_avg = ndimage.uniform_filter1d(act, avg_len, mode='constant', origin=origin)
  else:
    mov_avg = 0.0
  detections = act * (act >= mov_avg + threshold)
  max_len = pre_max + post_max + 1
  if max_len > 1:
    origin = int(np.floor((pre_max - post_max) / 2))
    mov_max = ndimage.maximum_filter1d(detections, max_len, mode='constant', origin=origin)
    detections = detections * (detections == mov_max)
  return np.nonzero(detections)[0]


def combine_onsets(times: np.ndarray, window: float) -> np.ndarray:
  """Keeps the first of any onsets closer than ``window`` seconds to the last kept one."""
  times = np.sort(np.asarray(times, np.float64))
  if window <= 0 or times.size < 2:
    return times
  kept = [times[0]]
  for t in times[1:]:
    if t - kept[-1] > window:
      kept.append(t)
  return np.asarray(kept)


class OnsetTask(Task):
  """Frame-wise onset detection; see the module docstring.

  Args:
    widen: neighbour frames each side set to ``widen_value`` in the target.
    widen_value: soft target value of widened frames.
    pos_weight: loss weight of a frame with target 1 (linear in the target).
    threshold, smooth, pre_avg, post_avg, pre_max, post_max, combine: peak
      picking, times in seconds as madmom takes them.
  """
  name = 'onset'
  num_outputs = 1
  output_kind = 'frame'
  best_metric = 'f_measure_50ms'
  best_mode = 'max'
  annotation = 'onsets'
  output_suffix = '.onsets'

  def __init__(self, *, widen: int = 1, widen_value: float = 0.5, pos_weight: float = 1.0,
               threshold: float = 0.5, smooth: float = 0.0, pre_avg: float = 0.0,
               post_avg: float = 0.0, pre_max: float = 0.03, post_max: float = 0.03,
               combine: float = 0.03):
    if widen < 0 or not 0.0 <= widen_value <= 1.0:
      raise ValueError(f'config.task.widen must be >= 0 and widen_value in [0, 1], got '
                       f'{widen}, {widen_value}')
    self.widen, self.widen_value, self.pos_weight = int(widen), float(widen_value), float(pos_weight)
    self.threshold, self.smooth = float(threshold), float(smooth)
    self.pre_avg, self.post_avg = float(pre_avg), float(post_avg)
    self.pre_max, self.post_max, self.combine = float(pre_max), float(post_max), float(combine)

  def targets_fn(self, track, num_frames: int, frame_rate: float):
    onsets = track.onsets if track.onsets is not None else np.zeros(0)
    return {TARGET_KEY: onset_targets(onsets, num_frames, frame_rate, self.widen,
                                      self.widen_value)}, {}

  def loss(self, logits, batch: Mapping[str, jax.Array]):
    logits = logits[..., 0]
    target = batch[TARGET_KEY].astype(jnp.float32)
    mask = batch['mask'].astype(jnp.float32)
    weight = mask * (1.0 + (self.pos_weight - 1.0) * target)
    bce = optax.sigmoid_binary_cross_entropy(logits, target)
    loss = (bce * weight).sum() / jnp.maximum(weight.sum(), 1e-6)
    return loss, {'frames': mask.sum()}

  def activations(self, logits: np.ndarray) -> np.ndarray:
    logits = np.asarray(logits, np.float64)
    logits = logits[..., 0] if logits.ndim == 2 else logits
    return 1.0 / (1.0 + np.exp(-logits))

  def decode(self, logits: np.ndarray, frame_rate: float) -> np.ndarray:
    """Onset times in seconds (sorted) from one track's (T, 1) logits."""
    frames = lambda seconds: int(round(seconds * frame_rate))  # pylint: disable=unnecessary-lambda-assignment
    peaks = peak_picking(self.activations(logits), self.threshold, smooth=frames(self.smooth),
                         pre_avg=frames(self.pre_avg), post_avg=frames(self.post_avg),
                         pre_max=frames(self.pre_max), post_max=frames(self.post_max))
    return combine_onsets(peaks / float(frame_rate), self.combine)

  def write(self, prediction: np.ndarray, out_dir: str, track_id: str) -> str:
    from mir_jax.data.annotations import write_onsets  # pylint: disable=g-import-not-at-top
    path = os.path.join(out_dir, track_id + self.output_suffix)
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    write_onsets(path, prediction)
    return path

  def metrics(self, predictions: Sequence[np.ndarray], tracks: Sequence) -> dict[str, float]:
    if len(predictions) != len(tracks):
      raise ValueError(f'{len(predictions)} predictions for {len(tracks)} tracks')
    scores = {f'{m}_{w}ms': [] for w in (50, 25) for m in ('f_measure', 'precision', 'recall')}
    for est, track in zip(predictions, tracks):
      if track.onsets is None:
        continue
      ref = np.asarray(track.onsets, np.float64)
      for w in (50, 25):
        f, p, r = mir_eval.onset.f_measure(ref, np.asarray(est, np.float64), window=w / 1000.0)
        scores[f'f_measure_{w}ms'].append(f)
        scores[f'precision_{w}ms'].append(p)
        scores[f'recall_{w}ms'].append(r)
    if not scores['f_measure_50ms']:
      raise ValueError('no evaluation track has onset annotations')
    return {k: float(np.mean(v)) for k, v in scores.items()}
