"""The fused layers under a mesh of two CPU host devices: batch split, same numbers."""
import json
import os
import subprocess
import sys

import pytest


def test_fused_layers_split_the_batch_over_host_devices():
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=2')
  script = os.path.join(os.path.dirname(__file__), '_two_devices_check.py')
  out = subprocess.run([sys.executable, script], capture_output=True, text=True,
                       timeout=600, env=env)
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert set(result) == {'lstm_uni', 'lstm_bi', 'gru_uni', 'gru_bi'}
  for case, r in result.items():
    assert r['split'], case  # each device ran its own rows
    assert not r['odd_batch_split'], case  # 3 rows over 2 devices: one plain loop
    assert r['out_err'] < 1e-5, (case, r)
    assert r['grad_err'] < 2e-5, (case, r)  # replicated params: gradients summed over devices


def test_host_devices_setting_is_checked():
  from mir_jax.train import sharding
  import jax
  have = len(jax.devices('cpu'))
  assert sharding.use_host_devices(1) == have  # 1 always accepted
  other = 7 if have != 7 else 8
  with pytest.raises(ValueError, match=f'train.host_devices={other}'):
    sharding.use_host_devices(other)
  with pytest.raises(ValueError, match='must be >= 1'):
    sharding.use_host_devices(-1)
