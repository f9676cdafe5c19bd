"""The training loop: jitted, data-parallel train/eval steps, logging, checkpoints.

This module knows neither audio nor labels. It takes a Flax model whose
``__call__(batch, *, deterministic)`` returns logits, a ``loss_fn(logits, batch)
-> (scalar, aux dict)`` and any iterator of dict batches with
``get_state()/set_state()``; :mod:`mir_jax.train.experiment` wires tasks and
data into it.

Config keys read: ``seed``, ``optimizer.*`` (see :mod:`optim`), ``train.num_steps``,
``train.log_every``, ``train.eval_every``, ``train.compute_dtype`` (via the
model), ``train.distributed``, ``checkpoint.*``, ``debug.kill_at_step``.
"""

from __future__ import annotations

import functools
import math
import os
import signal
import sys
import time
from typing import Any, Callable, Iterator, Mapping, Optional

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mir_jax.train import checkpoint as checkpoint_lib
from mir_jax.train import optim
from mir_jax.train import sharding
from mir_jax.train import state as state_lib
from mir_jax.train import writers

LossFn = Callable[[jax.Array, Mapping[str, jax.Array]], tuple[jax.Array, dict]]
EvaluateFn = Callable[[state_lib.TrainState], dict]

PREEMPTED_EXIT_CODE = 143  # 128 + SIGTERM, what schedulers expect from a preempted job


class NonFiniteLossError(FloatingPointError):
  """The loss became NaN or infinite; the run stops before saving that state."""


def make_train_step(model, loss_fn: LossFn, tx: optax.GradientTransformation,
                    schedule: optax.Schedule):
  """``(state, batch) -> (state, metrics)``; pure, jit it with shardings."""

  def train_step(state: state_lib.TrainState, batch):
    dropout_key = state.step_key()

    def compute_loss(params):
      logits = model.apply({'params': params}, batch, deterministic=False,
                           rngs={'dropout': dropout_key})
      # Loss and metrics in float32 whatever the compute dtype.
      logits = jax.tree_util.tree_map(lambda x: x.astype(jnp.float32), logits)
      loss, aux = loss_fn(logits, batch)
      return loss.astype(jnp.float32), aux

    (loss, aux), grads = jax.value_and_grad(compute_loss, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {'loss': loss, 'grad_norm': optax.tree.norm(grads),
               'learning_rate': schedule(state.step)}
    metrics.update({k: jnp.asarray(v, jnp.float32) for k, v in aux.items()})
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
    return new_state, metrics

  return train_step


def make_eval_step(model, loss_fn: Optional[LossFn] = None):
  """``(params, batch) -> (logits float32, metrics)`` with dropout off."""

  def eval_step(params, batch):
    logits = model.apply({'params': params}, batch, deterministic=True)
    logits = jax.tree_util.tree_map(lambda x: x.astype(jnp.float32), logits)
    metrics = {}
    if loss_fn is not None:
      loss, aux = loss_fn(logits, batch)
      metrics = {'loss': loss, **aux}
    return logits, metrics

  return eval_step


class Trainer:
  """Holds the mesh, the jitted steps and the state of one run.

  Args:
    config: the experiment ConfigDict.
    model: Flax module, ``model(batch, deterministic=...) -> logits``.
    loss_fn: ``(logits, batch) -> (loss, aux)``, masked inside.
    example_batch: a batch (arrays or ShapeDtypeStructs) to shape the params.
    mesh: defaults to all devices.
  """

  def __init__(self, config, model, loss_fn: LossFn, example_batch: Mapping[str, Any],
               mesh=None):
    self.config = config
    self.model = model
    self.mesh = mesh if mesh is not None else sharding.make_mesh()
    self.num_steps = int(config.train.num_steps)
    self.tx, self.schedule = optim.make_optimizer(config.optimizer, self.num_steps)
    example = {k: v for k, v in sharding.device_arrays(example_batch).items()}
    self._example = example
    init = functools.partial(state_lib.init_state, model, self.tx, example, int(config.seed))
    self.replicated = sharding.replicated(self.mesh)
    self.batch_sharding = sharding.batch_sharding(self.mesh)
    abstract = jax.eval_shape(init)
    self.state_sharding = jax.tree_util.tree_map(lambda _: self.replicated, abstract)
    self.abstract_state = checkpoint_lib.abstract_like(abstract, self.replicated)
    self._init_fn = init
    # Donating the old state halves peak memory on accelerators; CPU ignores
    # donation with a warning, so skip it there.
    donate = (0,) if jax.default_backend() != 'cpu' else ()
    self.train_step = self.under_mesh(jax.jit(
        make_train_step(model, loss_fn, self.tx, self.schedule),
        in_shardings=(self.state_sharding, self.batch_sharding),
        out_shardings=(self.state_sharding, self.replicated), donate_argnums=donate))
    self.eval_step = self.under_mesh(jax.jit(
        make_eval_step(model, loss_fn),
        in_shardings=(self.state_sharding.params, self.batch_sharding),
        out_shardings=self.replicated))

  def under_mesh(self, fn):
    """``fn`` called (and so traced) with the mesh as the context mesh.

    The fused recurrent layers read it to run each device's rows of the batch
    on that device (:func:`mir_jax.nn.recurrent.rnn`).
    """
    @functools.wraps(fn)
    def call(*args, **kwargs):
      with jax.set_mesh(self.mesh):
        return fn(*args, **kwargs)
    return call

  def init_state(self) -> state_lib.TrainState:
    # Initialised op by op, then placed: under jit, XLA:CPU (jax 0.10.2) hangs
    # executing the init of a 2-layer bidirectional LSTM with hidden size 64
    # (see the report); init runs once, so jit buys nothing here.
    return jax.device_put(self._init_fn(), self.state_sharding)

  def put_batch(self, batch: Mapping[str, Any]) -> dict[str, jax.Array]:
    """A host-local numpy batch as a global array split over the ``data`` axis."""
    return sharding.global_batch(batch, self.mesh)


def _is_finite(value) -> bool:
  return bool(np.isfinite(np.asarray(jax.device_get(value))).all())


def train(config, workdir: str, *, model, loss_fn: LossFn, train_iter: Iterator,
          example_batch: Mapping[str, Any], evaluate_fn: Optional[EvaluateFn] = None,
          mesh=None, trainer: Optional[Trainer] = None, echo=print) -> state_lib.TrainState:
  """Trains ``model`` for ``config.train.num_steps`` steps, resuming from ``workdir``.

  A restart with the same config resumes from the latest readable checkpoint,
  restoring params, optimizer state, step, RNG and the iterator's position;
  a resumed run ends bitwise equal (on CPU) to an uninterrupted one. SIGTERM
  saves a checkpoint and exits with code 143. A non-finite loss raises
  :class:`NonFiniteLossError` naming the step, before any save of that state.
  ``evaluate_fn(state) -> metrics`` runs every ``train.eval_every`` steps and at
  the end; its metrics go to ``eval_metrics.json`` and rank checkpoints. Pass
  ``trainer`` to share jitted steps with an evaluation function.
  """
  sharding.maybe_initialize_distributed(bool(config.train.get('distributed', False)))
  os.makedirs(workdir, exist_ok=True)
  config_json = config.to_dict() if hasattr(config, 'to_dict') else dict(config)
  if jax.process_index() == 0:
    writers.write_json_atomic(os.path.join(workdir, 'config.json'), config_json)
  if trainer is None:
    trainer = Trainer(config, model, loss_fn, example_batch, mesh=mesh)
  ckpt_cfg = config.checkpoint
  manager = checkpoint_lib.CheckpointManager(
      os.path.join(workdir, 'checkpoints'), save_every=int(ckpt_cfg.every),
      max_to_keep=int(ckpt_cfg.max_to_keep), best_metric=ckpt_cfg.get('best_metric') or None,
      best_mode=ckpt_cfg.get('best_mode', 'max'), async_save=bool(ckpt_cfg.get('async_save', True)))
  writer = writers.MetricWriter(workdir, tensorboard=bool(config.train.get('tensorboard', True)),
                                echo=echo)

  restored = manager.restore(trainer.abstract_state)
  if restored is not None:
    state = restored.state
    if restored.data_state:
      train_iter.set_state(restored.data_state)
    writer.echo(f'resumed from {manager.directory}/{restored.step}')
  else:
    state = trainer.init_state()
    writer.echo(f'model has {state_lib.param_count(state.params):,} parameters; '
                f'data parallel over {trainer.mesh.size} device(s)')
  start_step = int(jax.device_get(state.step))

  preempted = {'flag': False}

  def on_sigterm(signum, frame):  # pylint: disable=unused-argument
    preempted['flag'] = True

  previous_handler = None
  try:
    previous_handler = signal.signal(signal.SIGTERM, on_sigterm)
  except ValueError:  # not in the main thread: no preemption handling
    pass

  log_every = max(1, int(config.train.log_every))
  eval_every = int(config.train.get('eval_every', 0))
  kill_at = int(config.debug.get('kill_at_step', -1)) if 'debug' in config else -1
  global_batch_size = None
  pending: list[tuple[int, dict]] = []  # (step, metrics) since the last log line
  last_log_time, last_log_step = time.time(), start_step
  last_eval_step = None

  checked = {'upto': start_step}

  def check_pending(upto: int):
    """Raises if a finished step <= upto had a non-finite loss (one host sync)."""
    for step_done, metrics in pending:
      if not checked['upto'] < step_done <= upto:
        continue
      loss = jax.device_get(metrics['loss'])
      if not np.isfinite(loss):
        manager.wait()
        good = manager.latest_step()
        raise NonFiniteLossError(
            f'non-finite loss ({float(loss)}) at step {step_done}; stopping. The last '
            f'good checkpoint is step {good} in {manager.directory}. Lower '
            f'config.optimizer.learning_rate or set config.optimizer.clip_norm.')
    checked['upto'] = max(checked['upto'], upto)

  def run_eval(step: int):
    nonlocal last_eval_step
    metrics = evaluate_fn(state)
    metrics = {k: float(v) for k, v in writers.scalars(metrics).items()}
    writer.write(step, metrics, split='eval')
    writer.echo(f'[eval step {step}] ' + ' '.join(f'{k}={v:.4g}' for k, v in sorted(metrics.items())))
    if jax.process_index() == 0:
      writers.write_json_atomic(os.path.join(workdir, 'eval_metrics.json'),
                                {'step': step, **metrics})
    last_eval_step = step
    return metrics

  try:
    step = start_step
    while step < trainer.num_steps:
      if preempted['flag']:
        check_pending(step)
        manager.save(step, state, data_state=train_iter.get_state(), config=config_json,
                     force=True)
        manager.wait()
        writer.echo(f'SIGTERM: saved checkpoint at step {step}; exiting')
        writer.close()
        sys.exit(PREEMPTED_EXIT_CODE)
      batch = next(train_iter)
      if global_batch_size is None:
        global_batch_size = next(iter(sharding.device_arrays(batch).values())).shape[0] * jax.process_count()
      state, metrics = trainer.train_step(state, trainer.put_batch(batch))
      step += 1
      # Check the previous step's loss while this one runs (no pipeline stall).
      pending.append((step, metrics))
      check_pending(step - 1)

      if step % log_every == 0 or step == trainer.num_steps:
        check_pending(step)
        fetched = jax.device_get([m for _, m in pending])
        mean = {k: float(np.mean([f[k] for f in fetched])) for k in fetched[-1]}
        mean['learning_rate'] = float(fetched[-1]['learning_rate'])
        now = time.time()
        steps_per_s = (step - last_log_step) / max(now - last_log_time, 1e-9)
        mean['steps_per_second'] = steps_per_s
        mean['examples_per_second'] = steps_per_s * global_batch_size
        eta = (trainer.num_steps - step) / steps_per_s if steps_per_s > 0 else math.inf
        writer.write(step, mean, split='train')
        writer.echo(
            f'[step {step}/{trainer.num_steps}] loss={mean["loss"]:.4f} '
            f'lr={mean["learning_rate"]:.3g} grad_norm={mean["grad_norm"]:.3g} '
            f'{steps_per_s:.2f} steps/s {mean["examples_per_second"]:.1f} ex/s '
            f'ETA {writers.format_duration(eta)}')
        last_log_time, last_log_step = now, step
        pending = []

      eval_metrics = None
      if evaluate_fn is not None and (
          (eval_every > 0 and step % eval_every == 0) or step == trainer.num_steps):
        check_pending(step)
        eval_metrics = run_eval(step)
      if eval_metrics is not None or manager.should_save(step) or step == trainer.num_steps:
        check_pending(step)
        manager.save(step, state, data_state=train_iter.get_state(), config=config_json,
                     metrics=eval_metrics, force=True)
      if step == kill_at:
        # Test hook: die like a preempted VM, without any clean-up.
        os.kill(os.getpid(), signal.SIGKILL)
    if evaluate_fn is not None and last_eval_step != step:
      # A resumed run that was already finished: evaluate the final state again.
      eval_metrics = run_eval(step)
  finally:
    manager.close()
    writer.close()
    if previous_handler is not None:
      signal.signal(signal.SIGTERM, previous_handler)
  return state
