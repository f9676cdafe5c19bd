"""Checkpoints with Orbax (the only module that imports it).

A checkpoint step holds three items: ``state`` (the :class:`TrainState` pytree:
params, optimizer state, step, RNG), ``data`` (the data iterator's JSON state)
and ``config`` (the resolved config as JSON). Saves are asynchronous; Orbax
writes each step to a temporary directory and renames it when complete, so a
run killed mid-save leaves no half-written step behind. A step that still
fails to restore (corrupt files) is skipped with a warning in favour of the
previous one. Retention keeps the last ``max_to_keep`` steps plus the best
step by an eval metric.
"""

from __future__ import annotations

import dataclasses
import json
import logging as std_logging
import os
from typing import Any, Optional

from absl import logging
import grain.checkpoint as grain_checkpoint
import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as ocp_managers



class _DataState:
  """Adapter that lets grain's Orbax handler store any JSON iterator state.

  Grain's handler writes one ``process_<i>-of-<n>.json`` per host, which is what
  multi-host runs need (every host has its own shard and position). The state
  is captured when the adapter is made, so an asynchronous save stores the
  position at the step being saved, not a later one.
  """

  def __init__(self, state: Optional[dict] = None):
    self.state = state

  def get_state(self) -> bytes:
    return json.dumps(self.state if self.state is not None else {}).encode()

  def set_state(self, state: bytes) -> None:
    self.state = json.loads(state.decode() if isinstance(state, bytes) else state)

  def start_prefetch(self) -> None:
    pass


class _DropUntrackedMetricWarning(std_logging.Filter):
  """Orbax warns on every save without metrics when a best metric is tracked;
  here only evaluation steps carry metrics, so the warning is noise."""

  def filter(self, record):
    return 'Requested `tracked_metric`' not in str(record.msg)


logging.get_absl_logger().addFilter(_DropUntrackedMetricWarning())


class CheckpointMismatchError(ValueError):
  """The checkpoint's arrays do not match the model the config builds."""


@dataclasses.dataclass
class Restored:
  step: int
  state: Any
  data_state: Optional[dict]
  config: Optional[dict]


def abstract_like(tree: Any, sharding=None) -> Any:
  """ShapeDtypeStructs (optionally with a sharding) for every array of ``tree``."""
  def leaf(x):
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)
  return jax.tree_util.tree_map(leaf, tree)


def _plain_path(path) -> str:
  """'params/Dense_0/kernel': the same string for dict keys, attributes and indices.

  Orbax metadata turns dataclass and named-tuple fields into dict keys, so
  jax's ``keystr`` would differ between the state and its metadata.
  """
  parts = []
  for k in path:
    for attr in ('key', 'name', 'idx'):
      if hasattr(k, attr):
        parts.append(str(getattr(k, attr)))
        break
    else:
      parts.append(str(k))
  return '/'.join(parts)


def _shape_mismatches(abstract_state: Any, metadata_state: Any) -> list[str]:
  """'path: checkpoint shape vs config shape' lines for arrays that differ."""
  want = {_plain_path(p): tuple(x.shape)
          for p, x in jax.tree_util.tree_leaves_with_path(abstract_state)}
  have = {}
  for p, x in jax.tree_util.tree_leaves_with_path(metadata_state):
    shape = getattr(x, 'shape', None)
    if shape is not None:
      have[_plain_path(p)] = tuple(shape)
  problems = []
  for path in sorted(set(want) | set(have)):
    if path not in have:
      problems.append(f'{path}: missing in checkpoint, config expects {want[path]}')
    elif path not in want:
      problems.append(f'{path}: in checkpoint {have[path]}, absent from the config\'s model')
    elif want[path] != have[path]:
      problems.append(f'{path}: checkpoint {have[path]} vs config {want[path]}')
  return problems


class CheckpointManager:
  """Saves and restores (state, data iterator state, config) under ``directory``.

  Args:
    directory: where step folders go (created if missing).
    save_every: save when ``step % save_every == 0`` (``force`` overrides).
    max_to_keep: how many of the latest steps to keep.
    best_metric: eval metric name whose best step is also kept (None: none).
    best_mode: 'max' or 'min' for ``best_metric``.
    async_save: write in a background thread (the device-to-host copy is
      synchronous, so the training state may change right after ``save``).
  """

  def __init__(self, directory: str, *, save_every: int = 1000, max_to_keep: int = 3,
               best_metric: Optional[str] = None, best_mode: str = 'max',
               async_save: bool = True, read_only: bool = False):
    if best_mode not in ('max', 'min'):
      raise ValueError(f"config.checkpoint.best_mode must be 'max' or 'min', got {best_mode!r}")
    self.directory = os.path.abspath(directory)
    self.save_every = int(save_every)
    self.best_metric = best_metric or None
    policies = [ocp_managers.LatestN(n=max(1, int(max_to_keep)))]
    best_fn = None
    if self.best_metric:
      metric = self.best_metric
      best_fn = lambda m: float(m[metric])  # pylint: disable=unnecessary-lambda-assignment
      policies.append(ocp_managers.BestN(
          get_metric_fn=best_fn, reverse=(best_mode == 'min'), n=1,
          keep_checkpoints_without_metrics=False))
    options = ocp.CheckpointManagerOptions(
        preservation_policy=ocp_managers.AnyPreservationPolicy(policies),
        best_fn=best_fn, best_mode=best_mode,
        enable_async_checkpointing=async_save, create=not read_only, read_only=read_only,
        # Folders of saves cut short by a kill are removed when a run restarts.
        cleanup_tmp_directories=not read_only)
    self._manager = ocp.CheckpointManager(
        self.directory, options=options,
        # Explicit handlers so a fresh manager can read metadata before restoring.
        item_handlers={'state': ocp.StandardCheckpointHandler(),
                       'data': grain_checkpoint.CheckpointHandler(),
                       'config': ocp.JsonCheckpointHandler()})

  # Queries ------------------------------------------------------------------
  def all_steps(self) -> list[int]:
    self._manager.reload()
    return sorted(self._manager.all_steps())

  def latest_step(self) -> Optional[int]:
    steps = self.all_steps()
    return steps[-1] if steps else None

  def best_step(self) -> Optional[int]:
    """The best step by ``best_metric`` (latest when no metric was recorded)."""
    self._manager.reload()
    step = self._manager.best_step() if self.best_metric else None
    return step if step is not None else self.latest_step()

  # Save ---------------------------------------------------------------------
  def should_save(self, step: int) -> bool:
    return self.save_every > 0 and step % self.save_every == 0

  def save(self, step: int, state: Any, *, data_state: Optional[dict] = None,
           config: Optional[dict] = None, metrics: Optional[dict] = None,
           force: bool = False) -> bool:
    """Saves ``step`` if it is on the interval (or ``force``); returns whether it did."""
    if not (force or self.should_save(step)):
      return False
    if step in self._manager.all_steps():
      return False
    if metrics is not None:
      metrics = {k: float(v) for k, v in metrics.items() if np.ndim(v) == 0}
      if self.best_metric and self.best_metric not in metrics:
        raise ValueError(
            f'config.checkpoint.best_metric={self.best_metric!r} is not among the eval '
            f'metrics {sorted(metrics)}')
    args = ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data=grain_checkpoint.CheckpointSave(_DataState(data_state)),
        config=ocp.args.JsonSave(config or {}))
    return bool(self._manager.save(step, args=args, metrics=metrics, force=True))

  def wait(self) -> None:
    """Blocks until background writes are finished (call before exiting)."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()

  # Restore ------------------------------------------------------------------
  def check_compatible(self, step: int, abstract_state: Any) -> None:
    """Raises :class:`CheckpointMismatchError` naming every array whose shape differs."""
    metadata = self._manager.item_metadata(step)
    state_meta = metadata['state'] if metadata is not None else None
    if state_meta is None:
      return
    problems = _shape_mismatches(abstract_state, state_meta)
    if problems:
      shown = '\n  '.join(problems[:20])
      more = f'\n  ... and {len(problems) - 20} more' if len(problems) > 20 else ''
      raise CheckpointMismatchError(
          f'checkpoint {self.directory}/{step} does not match the model built from the '
          f'config (did the model config change? use a new --workdir):\n  {shown}{more}')

  def restore(self, abstract_state: Any, *, step: Optional[int] = None,
              which: str = 'latest') -> Optional[Restored]:
    """Restores into ``abstract_state`` (ShapeDtypeStructs carrying shardings).

    Tries ``step`` (or the latest / best step) first and walks back over older
    steps when one fails to read, warning each time. Returns None when there
    is no checkpoint at all. A shape mismatch is an error, never skipped.
    """
    steps = self.all_steps()
    if not steps:
      return None
    if step is None:
      step = self.best_step() if which == 'best' else steps[-1]
    candidates = [step] + [s for s in reversed(steps) if s < step]
    errors = []
    for candidate in candidates:
      try:
        self.check_compatible(candidate, abstract_state)
      except CheckpointMismatchError:
        raise
      except Exception as e:  # pylint: disable=broad-except
        # Unreadable metadata: let the restore below decide.
        logging.debug('metadata of step %d unreadable: %s', candidate, e)
      try:
        restored = self._manager.restore(candidate, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state),
            data=grain_checkpoint.CheckpointRestore(_DataState()),
            config=ocp.args.JsonRestore()))
      except Exception as e:  # pylint: disable=broad-except
        msg = (f'checkpoint step {candidate} in {self.directory} is incomplete or corrupt '
               f'({type(e).__name__}: {str(e)[:300]}); trying the previous one')
        logging.warning(msg)
        errors.append(msg)
        continue
      return Restored(step=candidate, state=restored['state'],
                      data_state=restored['data'].state or None, config=restored['config'] or None)
    raise RuntimeError(f'no readable checkpoint in {self.directory}:\n' + '\n'.join(errors))
