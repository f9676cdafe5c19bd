"""CheckpointManager: retention (last K + best), corrupt steps skipped, shape mismatch."""

import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mir_jax.train.checkpoint import CheckpointManager, CheckpointMismatchError, abstract_like


def _state(value):
  return {'w': jnp.full((3, 4), value, jnp.float32), 'step': jnp.asarray(value, jnp.int32)}


def test_keeps_latest_and_best_and_restores_data_state(tmp_path):
  m = CheckpointManager(str(tmp_path), save_every=2, max_to_keep=2, best_metric='f', best_mode='max')
  for step in range(1, 11):
    metrics = {'f': 0.9 if step == 4 else 0.1} if step % 2 == 0 else None
    m.save(step, _state(step), data_state={'next_index': step}, config={'a': 1}, metrics=metrics)
  m.wait()
  assert m.all_steps() == [4, 8, 10]  # 2 latest + best (4); odd steps never saved
  assert m.best_step() == 4
  r = m.restore(abstract_like(_state(0)))
  assert r.step == 10 and r.data_state == {'next_index': 10} and r.config == {'a': 1}
  np.testing.assert_array_equal(r.state['w'], np.full((3, 4), 10, np.float32))
  best = m.restore(abstract_like(_state(0)), which='best')
  assert best.step == 4 and int(best.state['step']) == 4
  m.close()


def test_corrupt_latest_step_falls_back_to_previous(tmp_path):
  m = CheckpointManager(str(tmp_path), save_every=1, max_to_keep=5)
  for step in (1, 2, 3):
    m.save(step, _state(step))
  m.close()
  shutil.rmtree(tmp_path / '3' / 'state')
  (tmp_path / '4.orbax-checkpoint-tmp-123').mkdir()  # an interrupted save
  r = CheckpointManager(str(tmp_path)).restore(abstract_like(_state(0)))
  assert r.step == 2
  assert float(r.state['w'][0, 0]) == 2.0


def test_shape_mismatch_is_a_clear_error(tmp_path):
  m = CheckpointManager(str(tmp_path), save_every=1)
  m.save(1, _state(1))
  m.close()
  other = {'w': jax.ShapeDtypeStruct((3, 5), jnp.float32), 'step': jax.ShapeDtypeStruct((), jnp.int32)}
  with pytest.raises(CheckpointMismatchError, match=r"w: checkpoint \(3, 4\) vs config \(3, 5\)"):
    CheckpointManager(str(tmp_path)).restore(other)
