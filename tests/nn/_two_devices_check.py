"""Run in a process with two CPU host devices (see test_recurrent_devices.py).

Prints one JSON line: for each fused cell and direction, whether the layer
split its batch over the mesh (a shard_map in the jaxpr) and the largest
difference of outputs and gradients from the generic scan on one device.
"""
import functools
import json

import jax
import jax.numpy as jnp

from mir_jax.nn import cells, recurrent
from mir_jax.train import sharding


def main():
  assert jax.device_count() == 2, jax.devices()
  mesh = sharding.make_mesh()
  lengths = jnp.array([23, 10, 3, 17])
  result = {}
  for name in ('lstm', 'gru'):
    for bidir in (False, True):
      key = jax.random.PRNGKey(0)
      if bidir:
        params = recurrent.bidirectional_init(key, name, 6, 5)
        layer = lambda p, x, impl: recurrent.bidirectional(name, p, x, lengths, impl=impl)
      else:
        params = cells.get_cell(name).init(key, 6, 5)
        layer = lambda p, x, impl: recurrent.rnn(name, p, x, lengths, impl=impl)
      x = jax.random.normal(key, (4, 23, 6))
      w = jax.random.normal(jax.random.PRNGKey(3), (4, 23, 10 if bidir else 5))

      def loss(p, x, impl):
        out, final = layer(p, x, impl)
        return jnp.sum(out * w) + jnp.sum(jax.tree_util.tree_leaves(final)[0] ** 2)

      ref = jax.jit(jax.grad(functools.partial(loss, impl='scan'), (0, 1)))(params, x)
      ref_out = layer(params, x, 'scan')[0]
      with jax.set_mesh(mesh):
        xs = jax.device_put(x, sharding.batch_sharding(mesh))
        ours = jax.jit(jax.grad(functools.partial(loss, impl='auto'), (0, 1)))(params, xs)
        out = jax.jit(lambda p, x: layer(p, x, 'auto')[0])(params, xs)
        jaxpr = str(jax.make_jaxpr(functools.partial(loss, impl='auto'))(params, xs))
        run = recurrent.bidirectional if bidir else recurrent.rnn
        odd = str(jax.make_jaxpr(lambda x: run(name, params, x, lengths[:3]))(x[:3]))
      err = max(float(jnp.max(jnp.abs(a - b)))
                for a, b in zip(jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(ref)))
      result[f'{name}_{"bi" if bidir else "uni"}'] = {
          'split': 'shard_map' in jaxpr, 'odd_batch_split': 'shard_map' in odd,
          'grad_err': err, 'out_err': float(jnp.max(jnp.abs(out - ref_out)))}
  print(json.dumps(result))


if __name__ == '__main__':
  main()
