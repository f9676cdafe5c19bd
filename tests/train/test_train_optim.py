"""Optimizers and schedules from the config, against hand-computed values."""

import math

import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from mir_jax.train import optim


def _cfg(**kw):
  base = dict(name='adam', learning_rate=0.1, schedule='constant', warmup_steps=0, decay_steps=0,
              end_learning_rate=0.0, step_every=10, step_factor=0.5, b1=0.9, b2=0.999, eps=1e-8,
              momentum=0.9, nesterov=False, weight_decay=0.0, clip_norm=0.0)
  base.update(kw)
  return ml_collections.ConfigDict(base)


def test_warmup_cosine_values():
  s = optim.make_schedule(_cfg(schedule='warmup_cosine', warmup_steps=10, decay_steps=110), 1000)
  assert float(s(0)) == 0.0
  assert float(s(5)) == pytest.approx(0.05)
  assert float(s(10)) == pytest.approx(0.1)
  # Half way through the cosine part: 0.1 * (1 + cos(pi / 2)) / 2.
  assert float(s(60)) == pytest.approx(0.05, abs=1e-6)
  assert float(s(110)) == pytest.approx(0.0, abs=1e-7)


def test_step_decay_and_constant():
  s = optim.make_schedule(_cfg(schedule='step', step_every=10, step_factor=0.5), 100)
  assert [float(s(i)) for i in (0, 9, 10, 25)] == pytest.approx([0.1, 0.1, 0.05, 0.025])
  c = optim.make_schedule(_cfg(), 100)
  assert float(c(0)) == float(c(99)) == pytest.approx(0.1)
  with pytest.raises(ValueError, match='config.optimizer.schedule'):
    optim.make_schedule(_cfg(schedule='linear'), 10)


def test_decay_mask_skips_vectors():
  params = {'dense': {'kernel': jnp.ones((3, 4)), 'bias': jnp.ones(4)}, 'norm': {'scale': jnp.ones(4)}}
  assert optim.decay_mask(params) == {'dense': {'kernel': True, 'bias': False},
                                      'norm': {'scale': False}}


def test_adamw_decays_kernels_only_and_sgd_momentum():
  params = {'kernel': jnp.ones((2, 2)), 'bias': jnp.ones(2)}
  zeros = {'kernel': jnp.zeros((2, 2)), 'bias': jnp.zeros(2)}
  tx, _ = optim.make_optimizer(_cfg(name='adamw', weight_decay=0.5), 10)
  updates, _ = tx.update(zeros, tx.init(params), params)
  # Zero gradient: the update is -lr * wd * param for kernels, nothing for biases.
  np.testing.assert_allclose(updates['kernel'], -0.1 * 0.5 * np.ones((2, 2)), rtol=1e-6)
  np.testing.assert_allclose(updates['bias'], 0.0)
  tx, _ = optim.make_optimizer(_cfg(name='sgd', momentum=0.9), 10)
  grads = {'kernel': jnp.ones((2, 2)), 'bias': jnp.ones(2)}
  state = tx.init(params)
  u1, state = tx.update(grads, state, params)
  u2, state = tx.update(grads, state, params)
  np.testing.assert_allclose(u1['bias'], -0.1)
  np.testing.assert_allclose(u2['bias'], -0.1 * 1.9)  # momentum trace 1 + 0.9


def test_clip_by_global_norm():
  tx, _ = optim.make_optimizer(_cfg(name='sgd', momentum=0.0, learning_rate=1.0, clip_norm=1.0), 10)
  params = {'a': jnp.zeros(2)}
  grads = {'a': jnp.array([3.0, 4.0])}  # global norm 5
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(updates['a'], [-0.6, -0.8], rtol=1e-6)
  assert math.isclose(float(optax.tree.norm(updates)), 1.0, rel_tol=1e-6)
  with pytest.raises(ValueError, match='config.optimizer.name'):
    optim.make_optimizer(_cfg(name='rmsprop'), 10)
