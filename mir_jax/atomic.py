"""Crash-safe file writes: the one place that knows how.

A write goes to a temporary file in the target's folder, is flushed and
fsynced, and then ``os.replace``-d over the target, so a crash or a kill leaves
either the old file or the new one, never half of one (datasets, feature
caches, annotations, metrics and plots all rely on this).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import IO, Iterator, Union


@contextlib.contextmanager
def atomic_open(path, mode: str = 'wb', **open_kwargs) -> Iterator[IO]:
  """Opens a temporary file that replaces ``path`` when the block succeeds.

  Parent folders are created. On an exception the temporary file is removed
  and ``path`` is left as it was.
  """
  path = os.fspath(path)
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  # Keep the real extension last: some writers (soundfile, matplotlib) look at it.
  fd, tmp = tempfile.mkstemp(dir=directory, prefix='.tmp-', suffix='-' + os.path.basename(path))
  try:
    with os.fdopen(fd, mode, **open_kwargs) as handle:
      yield handle
      handle.flush()
      os.fsync(handle.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def atomic_write(path, data: Union[str, bytes]) -> None:
  """Writes text (UTF-8) or bytes to ``path`` atomically."""
  if isinstance(data, bytes):
    with atomic_open(path, 'wb') as f:
      f.write(data)
  else:
    with atomic_open(path, 'w', encoding='utf-8', newline='') as f:
      f.write(data)
