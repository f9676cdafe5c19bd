"""The training state: one pytree holding everything a resumed run needs."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np


@flax.struct.dataclass
class TrainState:
  """Step, float32 params, optimizer state, and the run's base RNG key.

  ``rng`` is raw key data (uint32) so it checkpoints like any array; the key
  used at step ``s`` is ``fold_in(rng, s)``, which makes every random draw a
  pure function of (seed, step) and a resumed run bitwise equal to an
  uninterrupted one.
  """
  step: jax.Array
  params: Any
  opt_state: Any
  rng: jax.Array

  def step_key(self, salt: int = 0) -> jax.Array:
    """The key for this step (``salt`` separates independent streams)."""
    key = jax.random.wrap_key_data(self.rng)
    return jax.random.fold_in(jax.random.fold_in(key, self.step), salt)


def init_state(model, tx, example_batch: dict, seed: int) -> TrainState:
  """Initial state: params from ``model.init`` on an example batch, cast to float32."""
  key = jax.random.key(seed)
  init_key, run_key = jax.random.split(key)
  variables = model.init({'params': init_key, 'dropout': init_key}, example_batch,
                         deterministic=True)
  # Params are always stored in float32, whatever the compute dtype.
  params = jax.tree_util.tree_map(lambda p: p.astype(jnp.float32), variables['params'])
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                    rng=jax.random.key_data(run_key))


def param_count(params: Any) -> int:
  """Number of scalars in a params pytree."""
  return int(sum(np.prod(p.shape) for p in jax.tree_util.tree_leaves(params)))
