"""The one place that writes metrics: console, TensorBoard event files, JSON lines.

TensorBoard files come from tensorboardX (no TensorFlow needed); ``metrics.jsonl``
holds one ``{"step": s, "split": ..., name: value}`` object a line, which
plotting scripts read without TensorBoard. Only process 0 writes.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any, Mapping

import jax
import numpy as np

from mir_jax.atomic import atomic_open


def write_json_atomic(path: str, obj: Any) -> None:
  """Writes JSON so that a crash leaves either the old file or the new one."""
  with atomic_open(path, 'w') as f:
    json.dump(obj, f, indent=2, sort_keys=True, default=_to_python)
    f.write('\n')


def _to_python(value: Any) -> Any:
  if isinstance(value, (np.generic, np.ndarray, jax.Array)):
    return np.asarray(value).tolist()
  raise TypeError(f'not JSON-serialisable: {type(value).__name__}')


def scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
  """The scalar entries of ``metrics`` as Python floats (others are skipped)."""
  out = {}
  for name, value in metrics.items():
    if isinstance(value, (int, float, np.generic)) or (hasattr(value, 'ndim') and value.ndim == 0):
      out[name] = float(value)
  return out


class MetricWriter:
  """Writes scalars to the console, TensorBoard and ``metrics.jsonl`` in ``workdir``."""

  def __init__(self, workdir: str, *, tensorboard: bool = True, echo=print):
    self._enabled = jax.process_index() == 0
    self._echo = echo
    self._tb = None
    self._jsonl = None
    if not self._enabled:
      return
    os.makedirs(workdir, exist_ok=True)
    self._jsonl = open(os.path.join(workdir, 'metrics.jsonl'), 'a')
    if tensorboard:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      self._tb = SummaryWriter(os.path.join(workdir, 'tensorboard'))

  def write(self, step: int, metrics: Mapping[str, Any], split: str = 'train') -> None:
    """Records scalar ``metrics`` at ``step`` under ``split`` (train / eval)."""
    if not self._enabled:
      return
    values = scalars(metrics)
    row = {'step': int(step), 'split': split, 'time': time.time()}
    row.update({k: (v if math.isfinite(v) else str(v)) for k, v in values.items()})
    self._jsonl.write(json.dumps(row) + '\n')
    self._jsonl.flush()
    if self._tb is not None:
      for name, value in values.items():
        self._tb.add_scalar(f'{split}/{name}', value, int(step))
      self._tb.flush()

  def echo(self, message: str) -> None:
    if self._enabled:
      self._echo(message, flush=True) if self._echo is print else self._echo(message)

  def close(self) -> None:
    if self._jsonl is not None:
      self._jsonl.close()
      self._jsonl = None
    if self._tb is not None:
      self._tb.close()
      self._tb = None


def format_duration(seconds: float) -> str:
  """'1h02m03s' style, for ETAs."""
  if not math.isfinite(seconds):
    return '?'
  seconds = int(round(seconds))
  h, rest = divmod(seconds, 3600)
  m, s = divmod(rest, 60)
  return f'{h}h{m:02d}m{s:02d}s' if h else f'{m}m{s:02d}s'
