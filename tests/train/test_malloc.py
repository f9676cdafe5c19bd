"""The trainer's glibc allocator settings: large buffers reuse their pages instead of faulting anew."""

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.system() != 'Linux', reason='glibc only')

# malloc itself (numpy would ask for huge pages). 48 MiB, above glibc's largest dynamic mmap threshold (32 MiB): by default each one is a fresh
# mapping whose pages all fault in when written.
_SCRIPT = """
import ctypes, resource, sys
from mir_jax.train import malloc
libc = ctypes.CDLL('libc.so.6')
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[1] == 'heap':
  assert malloc.use_heap_allocator() and malloc.applied()
faults = []
for _ in range(6):
  f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  a = libc.malloc(48 << 20)
  ctypes.memset(a, 1, 48 << 20)
  libc.free(a)
  faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
print(min(faults[1:]))
"""


def _faults_per_buffer(mode):
  out = subprocess.run([sys.executable, '-c', _SCRIPT, mode], capture_output=True, text=True,
                       check=True, env={'PATH': '', 'PYTHONPATH': ':'.join(sys.path)})
  return int(out.stdout.split()[-1])


def test_heap_allocator_reuses_pages_of_large_buffers():
  pages = (48 << 20) // 4096
  assert _faults_per_buffer('default') > pages // 2  # the premise: glibc maps them afresh
  assert _faults_per_buffer('heap') < pages // 100
