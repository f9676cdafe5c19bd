"""Building the native kernels: where a compiler is present it must work, cached and atomic."""

import os
import subprocess
import sys

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


_AVX2_CHECK = '''
import jax, jax.numpy as jnp, numpy as np
from mir_jax import kernels
from mir_jax.kernels import gru, lstm
from mir_jax.nn import cells, fused
assert kernels.available()
T, B, I, H = 9, 7, 5, 37  # 7 rows = two 3-row blocks and a 1-row tail; 37 = a partial panel
xs = jax.random.normal(jax.random.PRNGKey(0), (T, B, I))
valid = (jnp.arange(T)[:, None] < jnp.array([9, 5, 1, 9, 3, 8, 2])[None, :])[..., None]
for cell, ours, ref in (('lstm', lstm.lstm_layer, fused.lstm_layer),
                        ('gru', gru.gru_layer, fused.gru_layer)):
  p = cells.get_cell(cell).init(jax.random.PRNGKey(1), I, H)
  h = jnp.full((B, H), 0.3)
  carry = (h, -h) if cell == 'lstm' else h
  loss = lambda f: lambda p, x: jnp.sum(jnp.sin(f(p, x, carry, valid)[0]))
  for a, b in zip(jax.tree.leaves((ours(p, xs, carry, valid), jax.grad(loss(ours))(p, xs))),
                  jax.tree.leaves((ref(p, xs, carry, valid), jax.grad(loss(ref))(p, xs)))):
    np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-4)
print('ok')
'''


@pytest.mark.skipif('avx2' not in kernels._cpu_flags().split(),  # pylint: disable=protected-access
                    reason='needs an x86 CPU with AVX2')
def test_the_avx2_build_equals_the_fused_layers(tmp_path):
  # This machine may have AVX-512; the AVX2 code path (3-row blocks, two ymm per
  # vector) is what an older x86 CPU runs, so build and check it explicitly.
  env = dict(os.environ, MIR_JAX_KERNEL_MARCH='x86-64-v3', MIR_JAX_KERNEL_CACHE=str(tmp_path))
  done = subprocess.run([sys.executable, '-c', _AVX2_CHECK], env=env, capture_output=True,
                        text=True, timeout=600, check=False)
  assert done.returncode == 0 and 'ok' in done.stdout, done.stderr[-3000:]
