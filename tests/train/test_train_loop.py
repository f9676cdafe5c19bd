"""The training loop on a fake task: loss falls, resume is exact, NaN guard, SIGTERM."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
import fake_training  # pylint: disable=wrong-import-position

from mir_jax.train import checkpoint as checkpoint_lib  # pylint: disable=wrong-import-position
from mir_jax.train import loop  # pylint: disable=wrong-import-position

DRIVER = os.path.join(os.path.dirname(__file__), 'fake_training.py')
ENV = {**os.environ, 'JAX_PLATFORMS': 'cpu'}


def _run_driver(workdir, steps, kill=-1, *extra, timeout=120):
  return subprocess.run([sys.executable, DRIVER, str(workdir), str(steps), str(kill), *extra],
                        capture_output=True, text=True, env=ENV, timeout=timeout)


def _sha(proc):
  lines = [l for l in proc.stdout.splitlines() if l.startswith('PARAMS_SHA')]
  assert lines, proc.stdout[-2000:] + proc.stderr[-3000:]
  return lines[-1].split()[1]


def test_loss_falls_and_logs_are_written(tmp_path):
  cfg = fake_training.make_config(40, **{'train.tensorboard': True})
  fake_training.run(str(tmp_path), cfg, echo=lambda *a, **k: None)
  rows = [json.loads(l) for l in open(tmp_path / 'metrics.jsonl')]
  train = [r for r in rows if r['split'] == 'train']
  assert [r['step'] for r in train] == [5, 10, 15, 20, 25, 30, 35, 40]
  assert train[-1]['loss'] < 0.5 * train[0]['loss']
  for key in ('learning_rate', 'grad_norm', 'steps_per_second', 'examples_per_second'):
    assert key in train[0]
  assert any(n.startswith('events.out.tfevents') for n in os.listdir(tmp_path / 'tensorboard'))
  assert json.load(open(tmp_path / 'config.json'))['train']['num_steps'] == 40
  manager = checkpoint_lib.CheckpointManager(str(tmp_path / 'checkpoints'))
  assert manager.latest_step() == 40
  # Resuming with a different model shape names the arrays that differ.
  wider = loop.Trainer(cfg, fake_training.TinyModel(hidden=8), fake_training.loss_fn,
                       fake_training.example_batch(cfg.data.batch_size))
  with pytest.raises(checkpoint_lib.CheckpointMismatchError,
                     match=r'params/Dense_0/kernel: checkpoint \(6, 16\) vs config \(6, 8\)'):
    manager.restore(wider.abstract_state)


@pytest.mark.slow
def test_same_seed_same_result_and_seed_matters(tmp_path):
  quiet = lambda *a, **k: None
  a = fake_training.run(str(tmp_path / 'a'), fake_training.make_config(6), echo=quiet)
  b = fake_training.run(str(tmp_path / 'b'), fake_training.make_config(6), echo=quiet)
  c = fake_training.run(str(tmp_path / 'c'), fake_training.make_config(6, seed=1), echo=quiet)
  assert fake_training.params_sha(a.params) == fake_training.params_sha(b.params)
  assert fake_training.params_sha(a.params) != fake_training.params_sha(c.params)


def test_sigkill_and_restart_is_bitwise_identical(tmp_path):
  """A run SIGKILLed at step 14 (maybe mid async save) and restarted equals an uninterrupted one."""
  # The uninterrupted and the killed run are independent: run them side by side.
  procs = [subprocess.Popen([sys.executable, DRIVER, str(tmp_path / name), '20', str(kill)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
           for name, kill in (('full', -1), ('resumed', 14))]
  outs = [p.communicate(timeout=120) for p in procs]
  full = subprocess.CompletedProcess(procs[0].args, procs[0].returncode, *outs[0])
  killed = subprocess.CompletedProcess(procs[1].args, procs[1].returncode, *outs[1])
  assert full.returncode == 0, full.stderr[-3000:]
  assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
  assert 'PARAMS_SHA' not in killed.stdout
  resumed = _run_driver(tmp_path / 'resumed', 20)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert 'resumed from' in resumed.stdout
  assert _sha(resumed) == _sha(full)


class _NaNAfter:
  """Wraps an iterator; from the ``bad``-th batch on (1-based) features are NaN."""

  def __init__(self, it, bad):
    self.it, self.bad, self.count = it, bad, 0

  def __iter__(self):
    return self

  def __next__(self):
    batch = dict(next(self.it))
    self.count += 1
    if self.count >= self.bad:
      batch['features'] = np.full_like(batch['features'], np.nan)
    return batch

  def get_state(self):
    return {'inner': self.it.get_state(), 'count': self.count}

  def set_state(self, state):
    self.it.set_state(state['inner'])
    self.count = state['count']


def test_non_finite_loss_stops_and_keeps_good_checkpoint(tmp_path):
  cfg = fake_training.make_config(20)
  bs = cfg.data.batch_size
  with pytest.raises(loop.NonFiniteLossError, match='at step 8;.*last good checkpoint is step 6'):
    loop.train(cfg, str(tmp_path), model=fake_training.TinyModel(), loss_fn=fake_training.loss_fn,
               train_iter=_NaNAfter(fake_training.make_iterator(bs), 8),
               example_batch=fake_training.example_batch(bs), echo=lambda *a, **k: None)
  manager = checkpoint_lib.CheckpointManager(str(tmp_path / 'checkpoints'))
  assert manager.all_steps() == [3, 6]
  trainer = loop.Trainer(cfg, fake_training.TinyModel(), fake_training.loss_fn,
                         fake_training.example_batch(bs))
  restored = manager.restore(trainer.abstract_state)
  assert restored.step == 6
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree_util.tree_leaves(restored.state.params))


def test_sigterm_saves_a_checkpoint_and_exits(tmp_path):
  proc = subprocess.Popen([sys.executable, DRIVER, str(tmp_path), '100000', '-1',
                           'train.log_every=1', 'checkpoint.every=100000'],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=ENV)
  try:
    for line in proc.stdout:
      if line.startswith('[step 5/'):
        proc.send_signal(signal.SIGTERM)
        break
    rest = proc.stdout.read()
    rc = proc.wait(timeout=60)
  finally:
    if proc.poll() is None:
      proc.kill()
  assert rc == loop.PREEMPTED_EXIT_CODE, rest[-2000:]
  assert 'SIGTERM: saved checkpoint' in rest
  steps = checkpoint_lib.CheckpointManager(str(tmp_path / 'checkpoints')).all_steps()
  assert len(steps) == 1 and 5 <= steps[0] < 100000
