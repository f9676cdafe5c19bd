"""The train step on 8 fake CPU devices equals the 1-device step (run in a subprocess)."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

SCRIPT = textwrap.dedent('''
    import json, sys
    sys.path.insert(0, %r)
    import jax, numpy as np
    import fake_training
    from mir_jax.train import loop, sharding
    assert jax.device_count() == 8, jax.devices()
    cfg = fake_training.make_config(4)
    out = {}
    for name, devices in (('one', jax.devices()[:1]), ('eight', jax.devices())):
      mesh = sharding.make_mesh(devices)
      trainer = loop.Trainer(cfg, fake_training.TinyModel(), fake_training.loss_fn,
                             fake_training.example_batch(8), mesh=mesh)
      state = trainer.init_state()
      it = fake_training.make_iterator(8)
      losses = []
      for _ in range(3):
        batch = trainer.put_batch(next(it))
        if name == 'eight':
          assert len(batch['features'].sharding.device_set) == 8
          assert batch['features'].addressable_shards[0].data.shape[0] == 1
        state, metrics = trainer.train_step(state, batch)
        losses.append(float(metrics['loss']))
      params = jax.tree_util.tree_leaves(jax.device_get(state.params))
      out[name] = {'losses': losses, 'params': [np.asarray(p).ravel().tolist() for p in params],
                   'param_devices': len(jax.tree_util.tree_leaves(state.params)[0].sharding.device_set)}
    print('RESULT', json.dumps(out))
''') % HERE


def test_eight_device_step_equals_one_device_step():
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu',
         'XLA_FLAGS': '--xla_force_host_platform_device_count=8'}
  proc = subprocess.run([sys.executable, '-c', SCRIPT], capture_output=True, text=True, env=env,
                        timeout=300)
  assert proc.returncode == 0, proc.stderr[-4000:]
  line = [l for l in proc.stdout.splitlines() if l.startswith('RESULT ')][-1]
  out = json.loads(line[len('RESULT '):])
  assert out['eight']['param_devices'] == 8  # params replicated on every device
  np.testing.assert_allclose(out['eight']['losses'], out['one']['losses'], rtol=1e-5)
  for a, b in zip(out['eight']['params'], out['one']['params']):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  # The step did something: params moved away from the initial ones between steps.
  assert out['one']['losses'][0] != out['one']['losses'][-1]
