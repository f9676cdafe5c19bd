"""Evaluation pictures: a track's spectrogram with its reference and predicted labels over it.

A researcher looks at these before reading any number: missed onsets, chord
boundaries off by a beat, a key a fifth away or tags that fire on every clip
show at a glance. One PNG per track; the overlay depends on the task
(``onset``, ``chord``, ``key``, ``tagging``).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from mir_jax.atomic import atomic_open

REF_COLOR = '#2ca02c'
EST_COLOR = '#ff7f0e'


def _spectrogram(ax, features: np.ndarray, frame_rate: float) -> float:
  """Draws the first channel of (T, bins[, channels]) features; returns the duration (s)."""
  x = np.asarray(features, np.float32)
  if x.ndim == 3:
    x = x[..., 0]
  if x.ndim != 2:
    raise ValueError(f'features must be (frames, bins[, channels]), got shape {x.shape}')
  duration = x.shape[0] / float(frame_rate)
  ax.imshow(x.T, origin='lower', aspect='auto', cmap='magma', interpolation='nearest',
            extent=(0, duration, 0, x.shape[1]))
  ax.set_ylabel('bin')
  return duration


def _onsets(axes, track, prediction) -> None:
  ax = axes[0]
  ref = np.asarray(track.onsets if track.onsets is not None else [], float)
  est = np.asarray(prediction, float)
  # Reference in the upper half, prediction in the lower: coincident lines stay visible.
  ax.vlines(ref, 0.5, 1.0, transform=ax.get_xaxis_transform(), colors=REF_COLOR, lw=1.0,
            label=f'reference ({len(ref)})')
  ax.vlines(est, 0.0, 0.5, transform=ax.get_xaxis_transform(), colors=EST_COLOR, lw=1.0,
            label=f'predicted ({len(est)})')
  ax.legend(loc='upper right', fontsize=7, framealpha=0.8)


def _segment_row(ax, intervals, labels, y: float, color: str) -> None:
  for (start, end), label in zip(np.asarray(intervals, float), labels):
    ax.broken_barh([(start, end - start)], (y - 0.4, 0.8), facecolors=color, edgecolors='white',
                   linewidth=0.8)
    if end - start > 0:
      ax.text((start + end) / 2, y, str(label), ha='center', va='center', fontsize=6,
              clip_on=True)


def _chords(axes, track, prediction) -> None:
  ax = axes[1]
  est_intervals, est_labels = prediction
  if track.chord_labels is not None:
    _segment_row(ax, track.chord_intervals, track.chord_labels, 1.0, REF_COLOR)
  _segment_row(ax, est_intervals, est_labels, 0.0, EST_COLOR)
  ax.set_yticks([0, 1])
  ax.set_yticklabels(['predicted', 'reference'], fontsize=7)
  ax.set_ylim(-0.6, 1.6)


def _key(axes, track, prediction) -> None:
  verdict = '' if track.key is None else ('  (correct)' if str(track.key) == str(prediction)
                                          else '  (wrong)')
  axes[0].set_title(f'key: reference {track.key}, predicted {prediction}{verdict}', fontsize=9)


def _tags(tag_names: Sequence[str], threshold: float):
  def draw(axes, track, prediction) -> None:
    ax = axes[1]
    probs = np.asarray(prediction, float).reshape(-1)
    truth = (np.asarray(track.tags).reshape(-1) > 0 if track.tags is not None
             else np.zeros_like(probs, bool))
    pos = np.arange(len(probs))
    ax.bar(pos, probs, color=[REF_COLOR if t else '#999999' for t in truth])
    ax.axhline(threshold, color=EST_COLOR, lw=0.8, ls='--')
    ax.set_xticks(pos)
    ax.set_xticklabels(list(tag_names), rotation=90, fontsize=6)
    ax.set_ylim(0, 1)
    ax.set_ylabel('p(tag)')
    ax.set_title('predicted probability per tag (green: tag of the reference; '
                 'dashed: threshold)', fontsize=8)
  return draw


_LAYOUT = {'onset': (_onsets, 0), 'chord': (_chords, 1), 'key': (_key, 0)}


def write_prediction_figure(path: str, task, features: np.ndarray, frame_rate: float,
                            prediction: Any, track) -> str:
  """Writes ``path`` (PNG, atomically): ``features`` with ``track``'s labels and ``prediction``.

  Args:
    path: the PNG to write.
    task: the :class:`~mir_jax.tasks.base.Task` that decoded ``prediction``.
    features: (T, bins) or (T, bins, channels) features of the track (first channel shown).
    frame_rate: feature frames per second (the time axis).
    prediction: what ``task.decode`` returned for the track.
    track: the :class:`~mir_jax.data.datasets.Track` with the reference annotation.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  if task.name == 'tagging':
    draw, below = _tags(task.tag_names, task.threshold), 2
  elif task.name in _LAYOUT:
    draw, below = _LAYOUT[task.name]
  else:
    raise ValueError(f'no prediction figure for task {task.name!r}')
  # 'below': height of a panel under the spectrogram (chord rows, tag bars); 0 = none.
  if below:
    fig, axes = plt.subplots(2, 1, figsize=(11, 3.5 + below),
                             gridspec_kw={'height_ratios': [3, below]})
  else:
    fig, ax = plt.subplots(1, 1, figsize=(11, 3.5))
    axes = [ax]
  try:
    duration = _spectrogram(axes[0], features, frame_rate)
    axes[0].set_xlabel('time (s)')
    if task.name == 'chord':  # the segment rows share the spectrogram's time axis
      axes[1].sharex(axes[0])
      axes[1].set_xlim(0, duration)
    draw(axes, track, prediction)
    fig.suptitle(track.track_id, fontsize=9)
    fig.tight_layout()
    with atomic_open(path, 'wb') as f:
      fig.savefig(f, dpi=100, format='png')
  finally:
    plt.close(fig)
  return path
