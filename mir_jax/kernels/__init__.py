"""Native CPU kernels for the recurrent core, as XLA FFI targets.

The sources ship with the package and are compiled on first use with the
machine's C++ compiler (``$CXX``, else ``g++`` or ``c++``) against the XLA FFI
headers that jaxlib ships, so installing needs nothing beyond PyPI. The
library is cached under ``$MIR_JAX_KERNEL_CACHE`` (default
``~/.cache/mir_jax/kernels``), keyed by the source, jax's version, the compiler
and the CPU's instruction sets (it is built with ``-march=native``, or
``-march=$MIR_JAX_KERNEL_MARCH``), and
written atomically, so concurrent processes and a crash mid-build leave no
broken file behind.

Where no compiler is found, the build fails, or ``MIR_JAX_NATIVE=0``, the
layers fall back to the pure-JAX fast paths of :mod:`mir_jax.nn.fused` (a
warning says why, once per process).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile

import jax

_SOURCES = ('lstm_cpu.cc', 'gru_cpu.cc')
_HEADERS = ('common.h',)
_FLAGS = ('-O3', '-std=c++17', '-shared', '-fPIC', '-fno-math-errno')


def _target_flags() -> tuple[str, ...]:
  # $MIR_JAX_KERNEL_MARCH (e.g. x86-64-v3) builds for machines other than this one.
  flags = ('-march=' + os.environ.get('MIR_JAX_KERNEL_MARCH', 'native'),)
  if platform.machine() in ('x86_64', 'AMD64'):
    flags += ('-mprefer-vector-width=512',)  # GCC's default is 256 even with AVX-512
  return flags
_TARGETS = {  # FFI target name -> symbol in the library
    'mir_jax_lstm_forward': 'MirLstmForward',
    'mir_jax_lstm_forward_train': 'MirLstmForwardTrain',
    'mir_jax_lstm_backward': 'MirLstmBackward',
    'mir_jax_gru_forward': 'MirGruForward',
    'mir_jax_gru_forward_train': 'MirGruForwardTrain',
    'mir_jax_gru_backward': 'MirGruBackward',
}


def find_compiler() -> str | None:
  """The C++ compiler the build uses: $CXX, else g++ or c++ on PATH; None if none."""
  for name in (os.environ.get('CXX'), 'g++', 'c++'):
    if name and shutil.which(name):
      return shutil.which(name)
  return None


def _cpu_flags() -> str:
  try:
    with open('/proc/cpuinfo', encoding='utf-8') as f:
      for line in f:
        if line.startswith(('flags', 'Features')):
          return line
  except OSError:
    pass
  return platform.processor()


def _cache_dir() -> str:
  return os.environ.get('MIR_JAX_KERNEL_CACHE',
                        os.path.join(os.path.expanduser('~'), '.cache', 'mir_jax', 'kernels'))


def build(compiler: str | None = None, cache_dir: str | None = None) -> str:
  """Compiles the kernels (if not cached) and returns the shared library's path.

  Raises RuntimeError naming the compiler and its output when the build fails.
  """
  compiler = compiler or find_compiler()
  if compiler is None:
    raise RuntimeError('no C++ compiler found (set $CXX, or install g++)')
  here = os.path.dirname(__file__)
  sources = [os.path.join(here, name) for name in _SOURCES]
  key = hashlib.sha256()
  for path in sources + [os.path.join(here, name) for name in _HEADERS]:
    with open(path, 'rb') as f:
      key.update(f.read())
  version = subprocess.run([compiler, '--version'], capture_output=True, text=True,
                           check=False).stdout
  flags = (*_FLAGS, *_target_flags())
  for part in (jax.__version__, compiler, version, ' '.join(flags), _cpu_flags(),
               platform.machine()):
    key.update(part.encode())
  cache_dir = cache_dir or _cache_dir()
  path = os.path.join(cache_dir, f'mir_jax_kernels-{key.hexdigest()[:16]}.so')
  if os.path.exists(path):
    return path
  os.makedirs(cache_dir, exist_ok=True)
  fd, tmp = tempfile.mkstemp(suffix='.so', dir=cache_dir)
  os.close(fd)
  try:
    cmd = [compiler, *flags, f'-I{jax.ffi.include_dir()}', *sources, '-o', tmp]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
      raise RuntimeError(f'building the native kernels failed ({" ".join(cmd)}):\n'
                         f'{done.stderr[-4000:]}')
    os.replace(tmp, path)  # atomic: a reader sees no file or a whole one
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  return path


@functools.cache
def available() -> bool:
  """Whether the native CPU kernels are built, loaded and registered with XLA."""
  if os.environ.get('MIR_JAX_NATIVE', '1') == '0':
    return False
  try:
    library = ctypes.cdll.LoadLibrary(build())
    for target, symbol in _TARGETS.items():
      jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(library, symbol)),
                                  platform='cpu')
  except (OSError, RuntimeError, AttributeError) as e:
    logging.warning('mir_jax native CPU kernels unavailable, using the pure-JAX layers: %s', e)
    return False
  return True
