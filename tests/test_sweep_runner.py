"""experiments/sweep.py end to end on a fake main: runs, skips, resumes after kills, reports failures."""

import csv
import json
import os
import signal
import statistics
import subprocess
import sys
import textwrap
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from mir_jax import sweeps  # pylint: disable=wrong-import-position

# Stands in for experiments/main.py: same flags, a "checkpoint" per step, SIGTERM saves
# and exits 143, eval_metrics.json at the end. FAKE_STEP_S slows the steps down.
FAKE_MAIN = textwrap.dedent('''
    import json, os, signal, sys, time
    args = dict(a[2:].split('=', 1) for a in sys.argv[1:])
    workdir = args['workdir']
    over = {k[len('config.'):]: v for k, v in args.items() if k.startswith('config.')}
    num_steps = int(over.get('train.num_steps', 20))
    os.makedirs(workdir, exist_ok=True)
    def dump(name, obj):
      tmp = os.path.join(workdir, name + '.tmp')
      with open(tmp, 'w') as f:
        json.dump(obj, f)
      os.replace(tmp, os.path.join(workdir, name))
    if args.get('mode') == 'eval':  # --mode=eval --config.eval.metrics_prefix=P: merge P<name>
      prefix = over['eval.metrics_prefix']
      old = json.load(open(os.path.join(workdir, 'eval_metrics.json')))
      scale = float(over.get('fake.scale', 1))
      dump('eval_metrics.json', {**old, prefix + 'step': old['step'], prefix + 'f': old['f'] * scale})
      sys.exit(0)
    with open(os.path.join(workdir, 'calls.txt'), 'a') as f:
      f.write(f'{os.getpid()} {args["config"]}\\n')
    with open(os.path.join(workdir, 'cpus.txt'), 'w') as f:
      f.write(' '.join(map(str, sorted(os.sched_getaffinity(0)))))
    dump('config.json', {'train': {'num_steps': num_steps},
                         'checkpoint': {'best_metric': 'f', 'best_mode': 'max'}})
    if over.get('fake.fail') == 'True':
      print('fake failure: bad setting', flush=True)
      sys.exit(3)
    ckpt = os.path.join(workdir, 'ckpt.json')
    step = json.load(open(ckpt))['step'] if os.path.exists(ckpt) else 0
    print(f'resumed from {step}' if step else 'model has 1,234 parameters', flush=True)
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    delay = float(os.environ.get('FAKE_STEP_S', '0'))
    while step < num_steps:
      if stop:
        dump('ckpt.json', {'step': step})
        print(f'SIGTERM: saved at {step}', flush=True)
        sys.exit(143)
      time.sleep(delay)
      step += 1
      dump('ckpt.json', {'step': step})
    f = int(over.get('model.hidden_size', 0)) / 100 + int(over.get('seed', 0)) / 1000
    dump('eval_metrics.json', {'step': num_steps, 'f': f, 'loss': 1 - f})
''')


@pytest.fixture
def setup(tmp_path):
  main = tmp_path / 'fake_main.py'
  main.write_text(FAKE_MAIN)
  sweep = tmp_path / 'fake_sweep.py'
  sweep.write_text(textwrap.dedent('''
      from mir_jax.sweeps import product, sweep_config
      def get_config(arg=None):
        return sweep_config('configs/onset_blstm.py', arg or '', overrides={'train.num_steps': 30})
      def get_sweep():
        extra = [{'fake.fail': True}] if False else []
        return product({'model.hidden_size': [16, 32]}) + extra
  '''))
  return {'main': str(main), 'sweep': str(sweep), 'root': str(tmp_path / 'root')}


def _cmd(s, *extra, sweep=None):
  return [sys.executable, os.path.join(ROOT, 'experiments', 'sweep.py'),
          f'--sweep={sweep or s["sweep"]}', f'--root={s["root"]}', f'--main={s["main"]}', *extra]


def _run(s, *extra, step_s=0.0, sweep=None, timeout=60):
  env = {**os.environ, 'FAKE_STEP_S': str(step_s)}
  return subprocess.run(_cmd(s, *extra, sweep=sweep), capture_output=True, text=True, env=env,
                        timeout=timeout, cwd=ROOT)


def _calls(workdir):
  path = os.path.join(workdir, 'calls.txt')
  return open(path).read().splitlines() if os.path.exists(path) else []


def test_runs_in_parallel_then_skips_and_collects(setup):
  out = _run(setup, '--seeds=2', '--parallel=2')
  assert out.returncode == 0, out.stdout + out.stderr
  names = [f'model.hidden_size={h},seed={s}' for h in (16, 32) for s in (0, 1)]
  for name in names:
    workdir = os.path.join(setup['root'], name)
    assert sweeps.run_status(workdir) == 'finished'
    assert len(_calls(workdir)) == 1
    # The printed command repeats this run alone.
    assert f'--workdir={workdir} --config.train.num_steps=30' in out.stdout
  assert 'finished=4 skipped=0 failed=0' in out.stdout

  with open(os.path.join(setup['root'], 'results.csv')) as f:
    rows = {r['setting']: r for r in csv.DictReader(f)}
  for h in (16, 32):
    ref = [h / 100 + s / 1000 for s in (0, 1)]
    row = rows[f'model.hidden_size={h}']
    assert float(row['f']) == pytest.approx(statistics.mean(ref))
    assert float(row['f_std']) == pytest.approx(statistics.stdev(ref))
    assert float(row['param_count']) == 1234
    assert float(row['wall_s']) > 0
  md = open(os.path.join(setup['root'], 'results.md')).read()
  assert '| `model.hidden_size=32` | 2 | **0.321 ± 0.001**' in md
  assert os.path.getsize(os.path.join(setup['root'], 'results.png')) > 1000

  again = _run(setup, '--seeds=2', '--parallel=2')
  assert again.returncode == 0
  assert again.stdout.count('finished, skipping') == 4
  assert all(len(_calls(os.path.join(setup['root'], n))) == 1 for n in names)  # nothing reran

  # More seeds later: only the new ones run, the old ones are reused.
  more = _run(setup, '--seeds=3')
  assert 'finished=2 skipped=4 failed=0' in more.stdout


def test_cpu_slots_split_the_cpus():
  assert sweeps.cpu_slots(2, [0, 1]) == [(0,), (1,)]
  assert sweeps.cpu_slots(2, [0, 1, 2, 3, 4]) == [(0, 1), (2, 3, 4)]
  assert sweeps.cpu_slots(3, [4, 6]) == [(4,), (6,), (4,)]  # fewer CPUs than slots: shared
  assert sweeps.cpu_slots(1, [0, 1]) == [(0, 1)]


def test_pin_gives_concurrent_runs_disjoint_cpus(setup):
  mine = sorted(os.sched_getaffinity(0))
  # 4 runs through 2 slots: each slot is freed and reused.
  out = _run(setup, '--parallel=2', '--pin', '--seeds=2', step_s=0.02)
  assert out.returncode == 0, out.stdout + out.stderr
  slots = sweeps.cpu_slots(2, mine)
  seen = []
  for h in (16, 32):
    for seed in (0, 1):
      path = os.path.join(setup['root'], f'model.hidden_size={h},seed={seed}', 'cpus.txt')
      seen.append(tuple(int(c) for c in open(path).read().split()))
  assert all(s in slots for s in seen), (seen, slots)
  assert set(seen[:2]) == set(slots)  # the first two ran at once, one per slot
  assert out.stdout.count('on CPUs') == 4
  if len(mine) >= 2:
    assert not set(slots[0]) & set(slots[1])


def test_only_runs_the_matching_settings(setup):
  out = _run(setup, '--only=hidden_size=16$')
  assert out.returncode == 0, out.stdout + out.stderr
  assert '1 of 2 runs' in out.stdout and 'finished=1 skipped=0 failed=0' in out.stdout
  assert sweeps.run_status(os.path.join(setup['root'], 'model.hidden_size=16,seed=0')) == 'finished'
  assert not _calls(os.path.join(setup['root'], 'model.hidden_size=32,seed=0'))
  md = open(os.path.join(setup['root'], 'results.md')).read()
  assert '| `model.hidden_size=32` | 0/1 |' in md  # still listed, as unfinished


def _wait_for(predicate, timeout=30.0):
  deadline = time.time() + timeout
  while time.time() < deadline:
    if predicate():
      return True
    time.sleep(0.05)
  return False


def _alive(pid):
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  # A zombie (exited, not yet reaped by init) is not running.
  with open(f'/proc/{pid}/stat') as f:
    return f.read().split(')')[-1].split()[0] != 'Z'


def _ckpt(workdir):
  try:
    return json.load(open(os.path.join(workdir, 'ckpt.json')))['step']
  except (OSError, ValueError):
    return 0


@pytest.mark.parametrize('how', ['sigint', 'sigkill'])
def test_killed_sweep_stops_its_runs_and_resumes(setup, how):
  env = {**os.environ, 'FAKE_STEP_S': '0.05'}  # 30 steps: 1.5 s per run
  proc = subprocess.Popen(_cmd(setup, '--parallel=2'), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
  workdirs = [os.path.join(setup['root'], f'model.hidden_size={h},seed=0') for h in (16, 32)]
  assert _wait_for(lambda: all(_ckpt(w) >= 2 for w in workdirs)), proc.communicate()[0]
  pids = [int(_calls(w)[0].split()[0]) for w in workdirs]
  proc.send_signal(signal.SIGINT if how == 'sigint' else signal.SIGKILL)
  out = proc.communicate(timeout=30)[0]
  if how == 'sigint':
    # The runner asked its runs to stop (they save a checkpoint) and waited for them.
    assert proc.returncode == 128 + signal.SIGINT, out
    assert 'Run the same command again to resume' in out
    assert not any(_alive(p) for p in pids)
    for w in workdirs:
      assert 'SIGTERM: saved at' in open(os.path.join(w, sweeps.LOG_FILE)).read()
  else:
    # Even a SIGKILLed runner takes its runs down (they get SIGTERM from the kernel).
    assert _wait_for(lambda: not any(_alive(p) for p in pids), timeout=10)
  stopped_at = [_ckpt(w) for w in workdirs]
  assert all(0 < s < 30 for s in stopped_at)
  assert all(sweeps.run_status(w) == 'partial' for w in workdirs)

  out = _run(setup, '--parallel=2')
  assert out.returncode == 0, out.stdout + out.stderr
  assert out.stdout.count(': resuming') == 2
  for w, s in zip(workdirs, stopped_at):
    assert sweeps.run_status(w) == 'finished'
    assert len(_calls(w)) == 2
    assert f'resumed from {s}' in open(os.path.join(w, sweeps.LOG_FILE)).read()
    record = json.load(open(os.path.join(w, sweeps.RUN_FILE)))
    assert [i['interrupted'] for i in record['invocations']][-1] is False


def test_failed_run_is_reported_and_the_rest_finish(setup, tmp_path):
  sweep = tmp_path / 'failing_sweep.py'
  sweep.write_text(open(setup['sweep']).read().replace('if False', 'if True'))
  out = _run(setup, sweep=str(sweep))
  assert out.returncode == 1
  assert 'fake.fail=True,seed=0: FAILED (exit code 3)' in out.stdout
  assert 'fake failure: bad setting' in out.stdout  # the log tail
  assert 'finished=2 skipped=0 failed=1' in out.stdout
  md = open(os.path.join(setup['root'], 'results.md')).read()
  assert 'Unfinished settings (1): `fake.fail=True`' in md


def test_evaluations_after_training_add_columns_and_resume(setup, tmp_path):
  sweep = tmp_path / 'eval_sweep.py'
  sweep.write_text(open(setup['sweep']).read().replace(
      "overrides={'train.num_steps': 30}",
      "overrides={'train.num_steps': 30}, columns=('f', 'long_f'), plot=('f', 'long_f'), "
      "evals={'long_': {'fake.scale': 0.5}}"))
  dry = _run(setup, '--dry_run', sweep=str(sweep))
  assert '--mode=eval --config.eval.metrics_prefix=long_ --config.fake.scale=0.5' in dry.stdout
  out = _run(setup, sweep=str(sweep))
  assert out.returncode == 0, out.stdout + out.stderr
  assert out.stdout.count('evaluating long_') == 2 and 'finished=2 ' in out.stdout
  with open(os.path.join(setup['root'], 'results.csv')) as f:
    rows = {r['setting']: r for r in csv.DictReader(f)}
  for h in (16, 32):
    assert float(rows[f'model.hidden_size={h}']['long_f']) == pytest.approx(h / 200)
    assert 'long_step' not in rows[f'model.hidden_size={h}']
  record = json.load(open(os.path.join(setup['root'], 'model.hidden_size=16,seed=0',
                                       sweeps.RUN_FILE)))
  assert len(record['invocations']) == 2 and float(rows['model.hidden_size=16']['wall_s']) == \
      pytest.approx(record['invocations'][0]['wall_s'])  # the training run's time only

  # A trained run whose evaluation is missing (or failed) gets only the evaluation.
  workdir = os.path.join(setup['root'], 'model.hidden_size=32,seed=0')
  metrics = json.load(open(os.path.join(workdir, 'eval_metrics.json')))
  sweeps.write_json_atomic(os.path.join(workdir, 'eval_metrics.json'),
                           {k: v for k, v in metrics.items() if not k.startswith('long_')})
  assert sweeps.run_status(workdir, ['long_']) == 'trained'
  assert sweeps.run_status(workdir) == 'finished'
  again = _run(setup, sweep=str(sweep))
  assert again.returncode == 0, again.stdout + again.stderr
  assert 'finished=1 skipped=1 failed=0' in again.stdout
  assert len(_calls(workdir)) == 1  # not trained again
  assert sweeps.run_status(workdir, ['long_']) == 'finished'

  bad = tmp_path / 'bad_eval_sweep.py'
  bad.write_text(open(str(sweep)).read().replace("'long_'", "'long'"))
  out = _run(setup, sweep=str(bad))
  assert out.returncode != 0 and "eval prefix 'long' must be" in out.stderr


def test_a_workdir_started_by_another_command_is_refused(setup):
  out = _run(setup, '--set=train.num_steps=30', '--set=optimizer.learning_rate=0.1',
             '--dry_run')
  assert out.returncode == 0 and '--config.optimizer.learning_rate=0.1' in out.stdout
  sweep = sweeps.load_sweep(setup['sweep'])
  run = sweeps.plan(sweep, setup['root'])[0]
  os.makedirs(run.workdir)
  sweeps.write_json_atomic(os.path.join(run.workdir, sweeps.RUN_FILE),
                           {'args': run.args(setup['main']) + ['--config.model.cell=gru']})
  out = _run(setup)
  assert out.returncode != 0
  assert 'was started by a different command' in out.stderr and run.workdir in out.stderr
  assert _calls(run.workdir) == []


@pytest.mark.slow
def test_real_tiny_sweep_with_main(tmp_path):
  """2 settings x 1 seed of configs/onset_blstm.py:tiny for 4 steps (~60 s on 2 shared cores)."""
  sweep = tmp_path / 'tiny_sweep.py'
  sweep.write_text(textwrap.dedent('''
      from mir_jax.sweeps import sweep_config
      def get_config(arg=None):
        return sweep_config('configs/onset_blstm.py', 'tiny', overrides={
            'train.num_steps': 4, 'checkpoint.every': 2, 'train.log_every': 2,
            'train.tensorboard': False})
      def get_sweep():
        return [{'model.cell': 'lstm'}, {'model.cell': 'gru'}]
  '''))
  root = tmp_path / 'root'
  cmd = [sys.executable, os.path.join(ROOT, 'experiments', 'sweep.py'), f'--sweep={sweep}',
         f'--root={root}', f'--set=data.root={tmp_path / "data"}']
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu'}
  out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
  assert out.returncode == 0, out.stdout + out.stderr
  for cell in ('lstm', 'gru'):
    workdir = root / f'model.cell={cell},seed=0'
    metrics = json.load(open(workdir / 'eval_metrics.json'))
    assert metrics['step'] == 4 and 0.0 <= metrics['f_measure_50ms'] <= 1.0
    assert json.load(open(workdir / 'config.json'))['model']['cell'] == cell
  with open(root / 'results.csv') as f:
    rows = {r['setting']: r for r in csv.DictReader(f)}
  assert set(rows) == {'model.cell=lstm', 'model.cell=gru'}
  # An LSTM has 4 gate blocks to the GRU's 3: more parameters at the same size.
  assert float(rows['model.cell=lstm']['param_count']) > float(rows['model.cell=gru']['param_count'])
  again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, cwd=ROOT)
  assert again.returncode == 0 and again.stdout.count('finished, skipping') == 2
