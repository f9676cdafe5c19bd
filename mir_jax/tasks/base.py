"""The task interface: what a MIR task supplies to the pipeline, the loop and predict.

A task knows labels and metrics, not models. The data pipeline calls
``targets_fn``; the training loop calls ``loss``; evaluation and prediction
call ``decode``, ``metrics`` and ``write``.
"""

from __future__ import annotations

import abc
from typing import Any, Mapping, Sequence

import jax
import numpy as np


class Task(abc.ABC):
  """Base class of MIR tasks.

  Attributes:
    name: registry name.
    num_outputs: logits per frame (frame tasks) or per clip (clip tasks).
    output_kind: 'frame' (logits (B, T, K)) or 'clip' (logits (B, K)).
    best_metric: the eval metric that ranks checkpoints (higher is better
      unless ``best_mode`` is 'min').
    annotation: the ``Track`` field a track needs to be used by this task.
  """
  name: str = ''
  num_outputs: int = 1
  output_kind: str = 'frame'
  best_metric: str = ''
  best_mode: str = 'max'
  annotation: str = ''
  output_suffix: str = ''

  def has_labels(self, track) -> bool:
    """Whether ``track`` carries this task's annotation."""
    return getattr(track, self.annotation, None) is not None

  @abc.abstractmethod
  def targets_fn(self, track, num_frames: int, frame_rate: float) -> tuple[dict, dict]:
    """(frame targets with leading axis ``num_frames``, clip targets) as numpy arrays."""

  @abc.abstractmethod
  def loss(self, logits: jax.Array, batch: Mapping[str, jax.Array]) -> tuple[jax.Array, dict]:
    """(scalar loss, aux metrics dict), masked by ``batch['mask']``; runs under jit."""

  @abc.abstractmethod
  def decode(self, logits: np.ndarray, frame_rate: float) -> Any:
    """One track's prediction from its unpadded logits (host, numpy)."""

  @abc.abstractmethod
  def write(self, prediction: Any, out_dir: str, track_id: str) -> str:
    """Writes ``prediction`` in the task's standard file format; returns the path."""

  @abc.abstractmethod
  def metrics(self, predictions: Sequence[Any], tracks: Sequence[Any]) -> dict[str, float]:
    """Dataset-level metrics (mir_eval) of ``predictions`` aligned with ``tracks``."""
