"""MIR tasks by name: ``build_task(config.task)``.

Each task supplies targets, a masked loss, decoding, file output and mir_eval
metrics (see :class:`mir_jax.tasks.base.Task`).
"""

from __future__ import annotations

from mir_jax.tasks.base import Task
from mir_jax.tasks.chord import ChordTask
from mir_jax.tasks.chord_seq import ChordSequenceTask
from mir_jax.tasks.key import KeyTask
from mir_jax.tasks.onset import OnsetTask
from mir_jax.tasks.tagging import TaggingTask

TASKS = {
    'onset': OnsetTask,
    'chord': ChordTask,
    'chord_seq': ChordSequenceTask,
    'key': KeyTask,
    'tagging': TaggingTask,
}


def build_task(task_config) -> Task:
  """The task named ``task_config.name``, built from the other keys of ``task_config``."""
  cfg = task_config.to_dict() if hasattr(task_config, 'to_dict') else dict(task_config)
  name = cfg.pop('name', None)
  if name not in TASKS:
    raise ValueError(f'config.task.name={name!r} is not one of {sorted(TASKS)}')
  try:
    return TASKS[name](**cfg)
  except TypeError as e:
    raise ValueError(f'config.task for {name!r}: {e}') from e
