"""glibc allocator settings for training (and benchmark) processes.

XLA's CPU backend allocates each execution's intermediates afresh. Under
glibc's defaults the large ones (over the mmap threshold, or in a worker
thread's own arena, whose heaps are unmapped when they empty) come from fresh
mappings, so every page of them faults in again on every step: about 15,000
to 18,000 minor faults (60-70 MB) per forward+backward of a (64, 100, 128, 512)
LSTM or GRU layer. One arena that keeps its memory (no mmap for large blocks,
no trimming) lets each step reuse the previous step's pages: 0 faults per call
(``experiments/benchmarks/lstm.py`` reports them). The cost is that freed
memory stays with the process (up to the trim threshold) instead of going
back to the OS, which a training process reuses anyway.

It acts on the whole process, so a benchmark that applies it runs every peer
(Flax, PyTorch) under it alike. Equivalent environment, for other programs:
``MALLOC_ARENA_MAX=1 MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_KEEP = 1 << 30  # bytes: blocks below this come from the heap; freed memory up to it is kept

SETTINGS = {'M_ARENA_MAX': 1, 'M_MMAP_THRESHOLD': _KEEP, 'M_TRIM_THRESHOLD': _KEEP}
_applied = False


def _libc():
  if platform.system() != 'Linux':
    return None
  try:
    libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
    libc.gnu_get_libc_version  # pylint: disable=pointless-statement  (glibc, not musl)
    return libc
  except (OSError, AttributeError):
    return None


def use_heap_allocator() -> bool:
  """Applies :data:`SETTINGS` with ``mallopt``; False where the C library is not glibc.

  Call it before JAX starts its backend (its threads pick their arena when
  they first allocate). Idempotent.
  """
  global _applied
  if _applied:
    return True
  libc = _libc()
  if libc is None:
    logging.info('not glibc: keeping the C library allocator as it is')
    return False
  values = {'M_ARENA_MAX': _M_ARENA_MAX, 'M_MMAP_THRESHOLD': _M_MMAP_THRESHOLD,
            'M_TRIM_THRESHOLD': _M_TRIM_THRESHOLD}
  for name, value in SETTINGS.items():
    if libc.mallopt(ctypes.c_int(values[name]), ctypes.c_int(value)) != 1:
      logging.warning('mallopt(%s, %d) was refused; allocator left partly at defaults', name,
                      value)
      return False
  _applied = True
  return True


def applied() -> bool:
  """Whether :func:`use_heap_allocator` has set the allocator in this process."""
  return _applied
