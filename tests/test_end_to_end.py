"""Tiny onset experiment end to end: render, train (loss falls), eval, predict."""

import copy
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from configs import onset_blstm  # pylint: disable=wrong-import-position
from mir_jax.train import run_config  # pylint: disable=wrong-import-position


def test_tiny_onset_experiment(tmp_path, tree_bytes):
  from mir_jax import predict  # pylint: disable=g-import-not-at-top
  from mir_jax.data.annotations import read_onsets  # pylint: disable=g-import-not-at-top
  from mir_jax.train import experiment  # pylint: disable=g-import-not-at-top
  config = onset_blstm.get_config('tiny')
  config.data.root = str(tmp_path / 'data')
  config.train.tensorboard = False
  workdir = str(tmp_path / 'work')
  experiment.train_and_evaluate(config, workdir)

  rows = [json.loads(l) for l in open(os.path.join(workdir, 'metrics.jsonl'))]
  losses = [r['loss'] for r in rows if r['split'] == 'train']
  assert len(losses) == 3 and losses[-1] < 0.8 * losses[0], losses
  after_train = json.load(open(os.path.join(workdir, 'eval_metrics.json')))
  assert after_train['step'] == 30 and 0.0 <= after_train['f_measure_50ms'] <= 1.0
  assert os.path.exists(os.path.join(workdir, 'plots', 'curves.png'))
  figures = sorted(f for f in os.listdir(os.path.join(workdir, 'plots')) if f.startswith('eval_'))
  assert len(figures) == min(config.eval.num_figures, config.data.synth.num_eval), figures
  saved = json.load(open(os.path.join(workdir, 'config.json')))
  assert saved['model']['hidden_size'] == 16 and saved['checkpoint']['best_metric'] == 'f_measure_50ms'

  # The workdir is one run: resuming it with another model, or evaluating it with other
  # features, stops naming the keys before anything in the workdir changes.
  before = tree_bytes(workdir)
  changed = copy.deepcopy(config)
  changed.model.hidden_size = 32
  with pytest.raises(run_config.ConfigMismatchError, match=r'model\.hidden_size: run 16, this command 32'):
    experiment.train_and_evaluate(changed, workdir)
  changed = copy.deepcopy(config)
  changed.features.hop_length = 512
  with pytest.raises(run_config.ConfigMismatchError, match=r'features\.hop_length'):
    experiment.evaluate(changed, workdir)
  assert tree_bytes(workdir) == before

  # --mode=eval on the best checkpoint reproduces the end-of-training numbers.
  config.eval.checkpoint = 'latest'
  result = experiment.evaluate(config, workdir)
  assert result['step'] == 30
  np.testing.assert_allclose(result['loss'], after_train['loss'], rtol=1e-5)

  # Predict on the eval audio with a low threshold so onsets are found; one
  # chunk (4 s) is shorter than a track (6 s), so chunking is exercised.
  config.task.threshold = 0.05
  audio = os.path.join(experiment.synth_dir(config, 'eval'), 'audio')
  written = predict.predict(config, workdir, audio, str(tmp_path / 'out'))
  names = sorted(os.path.basename(p) for p in written)
  assert names == sorted(os.path.splitext(n)[0] + '.onsets' for n in os.listdir(audio))
  for path in written:
    times = read_onsets(path)
    assert times.size > 0 and times.max() < 6.5


@pytest.mark.slow
def test_tiny_onset_kill_and_resume_matches_uninterrupted(tmp_path):
  """The real pipeline (grain iterator state, standardizer) resumes exactly too."""
  base = [sys.executable, os.path.join(ROOT, 'experiments', 'main.py'),
          '--config=configs/onset_blstm.py:tiny', f'--config.data.root={tmp_path / "data"}',
          '--config.train.tensorboard=False']
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu'}
  run = lambda *args: subprocess.run(base + list(args), cwd=ROOT, env=env, capture_output=True,
                                     text=True, timeout=600)
  full = run(f'--workdir={tmp_path / "full"}', '--config.checkpoint.every=5')
  assert full.returncode == 0, full.stderr[-3000:]
  # Saves every 5 steps are asynchronous: the kill at 27 may cut one short,
  # which the restart must skip in favour of an earlier complete one.
  killed = run(f'--workdir={tmp_path / "resumed"}', '--config.debug.kill_at_step=27',
               '--config.checkpoint.every=5')
  assert killed.returncode == -signal.SIGKILL
  resumed = run(f'--workdir={tmp_path / "resumed"}', '--config.checkpoint.every=5')
  assert resumed.returncode == 0 and 'resumed from' in resumed.stdout, resumed.stderr[-3000:]
  a = json.load(open(tmp_path / 'full' / 'eval_metrics.json'))
  b = json.load(open(tmp_path / 'resumed' / 'eval_metrics.json'))
  assert a == b


def test_tiny_onset_on_two_host_devices(tmp_path):
  """config.train.host_devices=2: data parallel over two CPU devices, one loop per core.

  The loss after 30 steps matches the one-device run: the split changes the
  order of a few sums, not the training.
  """
  base = [sys.executable, os.path.join(ROOT, 'experiments', 'main.py'),
          '--config=configs/onset_blstm.py:tiny', f'--config.data.root={tmp_path / "data"}',
          '--config.train.tensorboard=False']
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu'}
  env.pop('XLA_FLAGS', None)
  losses = {}
  for devices in (1, 2):
    out = subprocess.run(base + [f'--workdir={tmp_path / str(devices)}',
                                 f'--config.train.host_devices={devices}'],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f'data parallel over {devices} device(s)' in out.stdout
    losses[devices] = json.load(open(tmp_path / str(devices) / 'eval_metrics.json'))['loss']
  assert losses[2] == pytest.approx(losses[1], rel=1e-3)
