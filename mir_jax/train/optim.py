"""Optimizers and learning-rate schedules built from ``config.optimizer`` with Optax.

Keys read (see ``configs/base.py`` for the one-line docs):
``name`` (adam | adamw | sgd), ``learning_rate``, ``schedule`` (constant |
warmup_cosine | step), ``warmup_steps``, ``decay_steps``, ``end_learning_rate``,
``step_every``, ``step_factor``, ``b1``, ``b2``, ``eps``, ``momentum``,
``nesterov``, ``weight_decay``, ``clip_norm``.
"""

from __future__ import annotations

from typing import Any

import jax
import optax

SCHEDULES = ('constant', 'warmup_cosine', 'step')
OPTIMIZERS = ('adam', 'adamw', 'sgd')


def make_schedule(cfg: Any, num_steps: int) -> optax.Schedule:
  """The learning rate as a function of the step.

  ``warmup_cosine`` warms up linearly from 0 over ``warmup_steps`` and decays
  with a cosine to ``end_learning_rate`` at ``decay_steps`` (0: ``num_steps``).
  ``step`` multiplies the rate by ``step_factor`` every ``step_every`` steps,
  after an optional linear warmup.
  """
  lr = float(cfg.learning_rate)
  warmup = int(cfg.get('warmup_steps', 0))
  name = cfg.get('schedule', 'constant')
  if name == 'constant':
    schedule = optax.constant_schedule(lr)
    if warmup > 0:
      schedule = optax.join_schedules(
          [optax.linear_schedule(0.0, lr, warmup), schedule], [warmup])
    return schedule
  if name == 'warmup_cosine':
    decay_steps = int(cfg.get('decay_steps', 0)) or num_steps
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=lr, warmup_steps=warmup,
        decay_steps=max(decay_steps, warmup + 1),
        end_value=float(cfg.get('end_learning_rate', 0.0)))
  if name == 'step':
    every = int(cfg.get('step_every', 0))
    if every <= 0:
      raise ValueError(f'config.optimizer.step_every must be > 0 for schedule=step, got {every}')
    factor = float(cfg.get('step_factor', 0.1))
    decay = optax.exponential_decay(lr, transition_steps=every, decay_rate=factor,
                                    staircase=True)
    if warmup > 0:
      return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), decay], [warmup])
    return decay
  raise ValueError(f'config.optimizer.schedule={name!r} is not one of {SCHEDULES}')


def decay_mask(params: Any) -> Any:
  """True for weight matrices/kernels, False for biases, norm scales and other vectors.

  Parameters with fewer than two dimensions are biases, layer-norm scales or
  gains: decaying them towards zero hurts and buys no regularisation.
  """
  return jax.tree_util.tree_map(lambda p: getattr(p, 'ndim', 0) >= 2, params)


def make_optimizer(cfg: Any, num_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """(Optax transformation, schedule) for ``config.optimizer``.

  Gradient clipping by global norm comes first (RNN gradients explode);
  ``clip_norm <= 0`` turns it off. Weight decay uses :func:`decay_mask`.
  """
  schedule = make_schedule(cfg, num_steps)
  name = cfg.get('name', 'adam')
  wd = float(cfg.get('weight_decay', 0.0))
  if name == 'adam':
    opt = optax.adam(schedule, b1=cfg.get('b1', 0.9), b2=cfg.get('b2', 0.999),
                     eps=cfg.get('eps', 1e-8))
    if wd > 0:  # L2 added to the gradient (classic Adam "weight decay").
      opt = optax.chain(optax.add_decayed_weights(wd, mask=decay_mask), opt)
  elif name == 'adamw':
    opt = optax.adamw(schedule, b1=cfg.get('b1', 0.9), b2=cfg.get('b2', 0.999),
                      eps=cfg.get('eps', 1e-8), weight_decay=wd, mask=decay_mask)
  elif name == 'sgd':
    momentum = float(cfg.get('momentum', 0.9))
    opt = optax.sgd(schedule, momentum=momentum or None, nesterov=bool(cfg.get('nesterov', False)))
    if wd > 0:
      opt = optax.chain(optax.add_decayed_weights(wd, mask=decay_mask), opt)
  else:
    raise ValueError(f'config.optimizer.name={name!r} is not one of {OPTIMIZERS}')
  clip = float(cfg.get('clip_norm', 0.0))
  if clip > 0:
    opt = optax.chain(optax.clip_by_global_norm(clip), opt)
  return opt, schedule
