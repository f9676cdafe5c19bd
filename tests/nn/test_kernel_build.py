"""Building the native kernels: where a compiler is present it must work, cached and atomic."""

import os

import pytest

from mir_jax import kernels

pytestmark = pytest.mark.skipif(kernels.find_compiler() is None,
                                reason='no C++ compiler here')


def test_the_kernels_build_and_load():
  # Not skipped when the build fails (as the kernel tests are): a broken build fails here.
  assert kernels.available()


def test_build_is_cached_and_atomic(tmp_path):
  path = kernels.build(cache_dir=str(tmp_path))
  stamp = os.stat(path).st_mtime_ns
  assert kernels.build(cache_dir=str(tmp_path)) == path  # cached: not rebuilt
  assert os.stat(path).st_mtime_ns == stamp
  assert os.listdir(tmp_path) == [os.path.basename(path)]  # no temporary left behind


def test_a_failing_compiler_is_reported_and_leaves_nothing(tmp_path):
  with pytest.raises(RuntimeError, match='building the native kernels failed'):
    kernels.build(compiler='/bin/false', cache_dir=str(tmp_path))
  assert not os.listdir(tmp_path)
