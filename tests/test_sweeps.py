"""Sweep expansion (product, zip, concat, seeds), run names, status, results; every sweep entry loads."""

import csv
import glob
import json
import os
import re
import statistics
import sys

from absl import flags
from ml_collections import config_flags
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from mir_jax import sweeps  # pylint: disable=wrong-import-position

SWEEP_FILES = sorted(p for p in glob.glob(os.path.join(ROOT, 'configs', 'sweeps', '*.py'))
                     if not p.endswith('__init__.py'))


# ------------------------------------------------------------------- expansion

def test_product_is_cartesian_with_first_factor_slowest():
  got = sweeps.product({'a': [1, 2]}, [{'b': 3}, {'b': 4, 'c': 0}])
  assert got == [{'a': 1, 'b': 3}, {'a': 1, 'b': 4, 'c': 0},
                 {'a': 2, 'b': 3}, {'a': 2, 'b': 4, 'c': 0}]


def test_product_of_a_dict_multiplies_its_keys():
  got = sweeps.product({'x': ['p', 'q'], 'y': [1, 2, 3]})
  assert len(got) == 6
  assert {(d['x'], d['y']) for d in got} == {(x, y) for x in 'pq' for y in (1, 2, 3)}


def test_zip_pairs_and_rejects_unequal_lengths():
  assert sweeps.zip_({'sr': [16000, 11025], 'hop': [160, 110]}) == [
      {'sr': 16000, 'hop': 160}, {'sr': 11025, 'hop': 110}]
  assert sweeps.zip_([{'a': 1}, {'a': 2}], {'b': [5, 6]}) == [{'a': 1, 'b': 5}, {'a': 2, 'b': 6}]
  with pytest.raises(sweeps.SweepError, match='equal length'):
    sweeps.zip_({'a': [1, 2]}, {'b': [1, 2, 3]})


def test_concat_keeps_order_and_drops_duplicates():
  got = sweeps.concat([{}], {'a': [1, 2]}, [{'a': 1}, {'b': 0}])
  assert got == [{}, {'a': 1}, {'a': 2}, {'b': 0}]


def test_bad_factors_name_the_problem():
  with pytest.raises(sweeps.SweepError, match="'a' is set by two factors"):
    sweeps.product({'a': [1]}, {'a': [2]})
  with pytest.raises(sweeps.SweepError, match="values of 'k' must be a list"):
    sweeps.product({'k': 'mel'})  # a string would be swept letter by letter
  with pytest.raises(sweeps.SweepError, match='empty'):
    sweeps.product({'k': []})


def test_seeds_vary_fastest_and_cannot_be_set_twice():
  got = sweeps.with_seeds([{'a': 1}, {'a': 2}], 2)
  assert got == [{'a': 1, 'seed': 0}, {'a': 1, 'seed': 1}, {'a': 2, 'seed': 0}, {'a': 2, 'seed': 1}]
  with pytest.raises(sweeps.SweepError, match='seed'):
    sweeps.with_seeds([{'seed': 3}], 1)


# ------------------------------------------------------------------- names

def test_run_name_is_readable_sorted_and_order_free():
  a = sweeps.run_name({'seed': 1, 'features.log': 'db', 'features.kind': 'cqt'})
  b = sweeps.run_name({'features.kind': 'cqt', 'seed': 1, 'features.log': 'db'})
  assert a == b == 'features.kind=cqt,features.log=db,seed=1'
  assert sweeps.run_name({}) == 'default'
  assert sweeps.run_name({'config': 'configs/tagging_crnn.py', 'model.x': 1.5e-3}) == \
      'config=tagging_crnn,model.x=0.0015'


def test_run_names_are_filesystem_safe_short_and_unique():
  names = [
      sweeps.run_name({'k': 'a/b'}), sweeps.run_name({'k': 'a_b'}),  # '/' is replaced ...
      sweeps.run_name({'k': (1024, 2048)}), sweeps.run_name({'k': (1024, 2048, 4096)}),
      sweeps.run_name({'k': ()}), sweeps.run_name({'k': None}),
      sweeps.run_name({'k': 'x' * 300}), sweeps.run_name({'k': 'x' * 301}),
      sweeps.run_name({f'key{i}': i for i in range(40)}),
  ]
  assert len(set(names)) == len(names)  # ... and a hash keeps them apart
  for name in names:
    assert len(name) <= sweeps.MAX_NAME
    assert all(ch.isalnum() or ch in '._,=+-' for ch in name), name
  # The same overrides always give the same (hashed) name.
  assert sweeps.run_name({'k': 'x' * 300}) == names[6]


def test_flag_values_parse_back_through_config_flags(tmp_path):
  """What the runner writes on the command line is what the config receives."""
  cfg_file = tmp_path / 'cfg.py'
  cfg_file.write_text(
      'import ml_collections\n'
      'from ml_collections import config_dict\n'
      'def get_config():\n'
      '  c = ml_collections.ConfigDict()\n'
      '  c.s = "db"; c.i = 3; c.f = 0.5; c.b = False; c.t = (1, 2); c.e = ()\n'
      '  c.n = config_dict.FieldReference(None, field_type=float)\n'
      '  return c\n')
  values = {'s': 'none', 'i': 7, 'f': 1e-4, 'b': True, 't': (1024, 2048, 4096), 'e': (7,),
            'n': 8000.0}
  argv = (['prog', f'--config={cfg_file}']
          + [f'--config.{k}={sweeps.flag_value(v)}' for k, v in values.items()])
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file('config', None, flag_values=fv, lock_config=True, sys_argv=argv)
  fv(argv)
  for key, value in values.items():
    assert fv.config[key] == value and type(fv.config[key]) is type(value), key


# ------------------------------------------------------------------- every shipped sweep loads

def _load_with_flags(config_spec, overrides):
  argv = (['prog', f'--config={config_spec}']
          + [f'--config.{k}={sweeps.flag_value(v)}' for k, v in overrides])
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file('config', None, flag_values=fv, lock_config=True, sys_argv=argv)
  fv(argv)
  return fv.config


def _get(config, key):
  node = config
  for part in key.split('.'):
    node = node[part]
  return node


def test_there_are_the_five_ablations():
  names = {os.path.basename(p) for p in SWEEP_FILES}
  assert {'onset_preprocessing.py', 'onset_recurrent.py', 'chord_recurrent.py',
          'clip_aggregation.py', 'seq2seq_attention.py', 'input_length.py'} <= names


@pytest.mark.parametrize('path', SWEEP_FILES, ids=os.path.basename)
def test_every_sweep_entry_loads_through_the_real_flags(path, tmp_path):
  """Each run's --config.* flags parse on its base config and give a buildable experiment."""
  from mir_jax import models, tasks  # pylint: disable=g-import-not-at-top
  from mir_jax.audio.features import FeatureConfig, compute_features  # pylint: disable=g-import-not-at-top
  sweep = sweeps.load_sweep(path)
  runs = sweeps.plan(sweep, str(tmp_path), num_seeds=1)
  assert len({r.name for r in runs}) == len(runs) == len(sweep.settings)
  missing, checked, cqt_checked = set(), 0, set()
  for run in runs:
    file, _, arg = run.config.partition(':')
    if not os.path.exists(os.path.join(ROOT, file)):
      missing.add(file)
      continue
    config = _load_with_flags(os.path.join(ROOT, file) + (f':{arg}' if arg else ''), run.overrides)
    for key, value in run.overrides:
      assert _get(config, key) == value, f'{run.name}: {key}'
    for prefix, extra in run.evals:  # the --mode=eval commands after training parse too
      spec = os.path.join(ROOT, file) + (f':{arg}' if arg else '')
      evaluated = _load_with_flags(spec, [*run.overrides, ('eval.metrics_prefix', prefix), *extra])
      assert all(_get(evaluated, k) == v for k, v in extra) and \
          evaluated.eval.metrics_prefix == prefix, f'{run.name}: eval {prefix}'
    fcfg = FeatureConfig.from_dict(config.features.to_dict())
    # Tasks and models other engineers have not registered yet are their tests' business.
    if config.task.name in tasks.TASKS:
      task = tasks.build_task(config.task)
      if config.model.name in models.MODELS:
        import jax  # pylint: disable=g-import-not-at-top
        from mir_jax.train import experiment  # pylint: disable=g-import-not-at-top
        model = models.build_model(config.model, num_outputs=task.num_outputs,
                                   compute_dtype=config.train.compute_dtype)
        # Abstract init on a batch of this setting's feature shape: catches a model part
        # that the features cannot feed (e.g. a CQT-only pitch profile on a mel input).
        batch = experiment.example_batch(config, 1, task)
        jax.eval_shape(lambda b: model.init({'params': jax.random.key(0),  # pylint: disable=cell-var-from-loop
                                             'dropout': jax.random.key(0)}, b, deterministic=True),
                       batch)
    touches_features = any(k.startswith('features.') for k, _ in run.overrides)
    if (fcfg.kind == 'cqt' and touches_features
        and (fcfg.sample_rate, fcfg.hop_length) not in cqt_checked):
      # The CQT needs hop multiples of 2**(octaves - 1): compute one second to be sure.
      cqt_checked.add((fcfg.sample_rate, fcfg.hop_length))
      y = np.random.default_rng(0).standard_normal(fcfg.sample_rate).astype(np.float32) * 0.1
      assert compute_features(y, fcfg).shape[1:] == (fcfg.num_bins, fcfg.num_channels)
    checked += 1
  if missing:
    pytest.skip(f'base config {sorted(missing)} does not exist yet (checked {checked} other '
                'entries)')
  assert checked == len(runs)


@pytest.mark.parametrize('path', SWEEP_FILES, ids=os.path.basename)
def test_sweep_docstring_starts_with_its_command(path):
  sweep = sweeps.load_module(path)
  block = sweep.__doc__.strip().split('\n\n')[1].strip()
  assert block.startswith('python experiments/sweep.py --sweep=configs/sweeps/'
                          + os.path.basename(path))


# ------------------------------------------------------------------- plan

def _write_sweep(tmp_path, settings, **config_kwargs):
  path = tmp_path / 'my_sweep.py'
  path.write_text(
      'from mir_jax.sweeps import sweep_config\n'
      f'def get_config(arg=None):\n  return sweep_config(**{config_kwargs!r})\n'
      f'def get_sweep():\n  return {settings!r}\n')
  return str(path)


def test_plan_config_switch_fixed_overrides_and_seeds(tmp_path):
  path = _write_sweep(
      tmp_path, [{'model.cell': 'gru'}, {'config': 'configs/other.py', 'train.num_steps': 9}],
      config='configs/base_exp.py', config_arg='tiny', overrides={'train.num_steps': 5})
  sweep = sweeps.load_sweep(path)
  runs = sweeps.plan(sweep, '/r', num_seeds=2, extra_overrides={'data.root': '/d'})
  assert [r.name for r in runs] == [
      'model.cell=gru,seed=0', 'model.cell=gru,seed=1',
      'config=other,train.num_steps=9,seed=0', 'config=other,train.num_steps=9,seed=1']
  assert runs[0].config == 'configs/base_exp.py:tiny'
  assert runs[2].config == 'configs/other.py:tiny'  # the sweep's arg goes to every config
  assert dict(runs[0].overrides) == {'train.num_steps': 5, 'data.root': '/d',
                                     'model.cell': 'gru', 'seed': 0}
  assert dict(runs[3].overrides)['train.num_steps'] == 9  # the setting wins over a fixed one
  assert runs[3].setting == 'config=other,train.num_steps=9'
  assert runs[1].workdir == '/r/model.cell=gru,seed=1'
  cmd = runs[1].args('experiments/main.py')
  assert cmd[:3] == ['experiments/main.py', '--config=configs/base_exp.py:tiny',
                     '--workdir=/r/model.cell=gru,seed=1']
  assert '--config.seed=1' in cmd and '--config.model.cell=gru' in cmd


def test_plan_rejects_colliding_names_and_bad_files(tmp_path):
  path = _write_sweep(tmp_path, [{'k': 1}, {'k': '1'}], config='c.py')
  with pytest.raises(sweeps.SweepError, match='same workdir name'):
    sweeps.plan(sweeps.load_sweep(path), '/r')
  (tmp_path / 'nosweep.py').write_text('def get_config(arg=None):\n  return {}\n')
  with pytest.raises(sweeps.SweepError, match='no get_sweep'):
    sweeps.load_sweep(str(tmp_path / 'nosweep.py'))
  with pytest.raises(sweeps.SweepError, match='does not exist'):
    sweeps.load_sweep(str(tmp_path / 'missing.py'))


# ------------------------------------------------------------------- status and results

def _fake_workdir(workdir, *, num_steps, step, metrics, params=None, sps=None, wall=None):
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, 'config.json'), 'w') as f:
    json.dump({'train': {'num_steps': num_steps},
               'checkpoint': {'best_metric': 'f_measure', 'best_mode': 'max'}}, f)
  with open(os.path.join(workdir, 'eval_metrics.json'), 'w') as f:
    json.dump({'step': step, **metrics}, f)
  if params is not None:
    with open(os.path.join(workdir, sweeps.LOG_FILE), 'w') as f:
      f.write(f'model has {params:,} parameters\n[step 10/20] loss=1\n')
  if sps is not None:  # two logged intervals of 10 steps
    with open(os.path.join(workdir, 'metrics.jsonl'), 'w') as f:
      for s, rate in zip((10, 20), sps):
        f.write(json.dumps({'step': s, 'split': 'train', 'loss': 1.0, 'steps_per_second': rate})
                + '\n')
  if wall is not None:
    with open(os.path.join(workdir, sweeps.RUN_FILE), 'w') as f:
      json.dump({'invocations': [{'wall_s': w} for w in wall]}, f)


def test_run_status_tells_final_from_interval_eval(tmp_path):
  assert sweeps.run_status(str(tmp_path / 'nothing')) == 'new'
  os.makedirs(tmp_path / 'empty')
  assert sweeps.run_status(str(tmp_path / 'empty')) == 'new'
  _fake_workdir(str(tmp_path / 'mid'), num_steps=20, step=10, metrics={'f_measure': 0.5})
  assert sweeps.run_status(str(tmp_path / 'mid')) == 'partial'
  _fake_workdir(str(tmp_path / 'done'), num_steps=20, step=20, metrics={'f_measure': 0.5})
  assert sweeps.run_status(str(tmp_path / 'done')) == 'finished'
  os.remove(tmp_path / 'done' / 'config.json')
  assert sweeps.run_status(str(tmp_path / 'done')) == 'partial'


def test_results_mean_std_best_and_plot(tmp_path):
  path = _write_sweep(tmp_path, [{'h': 1}, {'h': 2}, {'h': 3}], config='c.py')
  root = str(tmp_path / 'root')
  runs = sweeps.plan(sweeps.load_sweep(path), root, num_seeds=3)
  f = {1: [0.5, 0.6, 0.7], 2: [0.8, 0.82, 0.9], 3: [0.1, 0.2, 0.3]}
  loss = {1: [1.0, 1.2, 1.1], 2: [2.0, 2.0, 2.3], 3: [0.5, 0.7, 0.9]}
  for run in runs:
    h, s = dict(run.overrides)['h'], run.seed
    finished = not (h == 3 and s == 2)  # one interrupted run: left out
    _fake_workdir(run.workdir, num_steps=20, step=20 if finished else 10,
                  metrics={'f_measure': f[h][s], 'loss': loss[h][s]},
                  params=1000 * h, sps=(10.0, 5.0), wall=[3.0, 4.5])
  paths = sweeps.write_results(root, runs, title='my_sweep')

  with open(paths['csv']) as fh:
    rows = {r['setting']: r for r in csv.DictReader(fh)}
  assert set(rows) == {'h=1', 'h=2', 'h=3'}
  for h in (1, 2):
    assert float(rows[f'h={h}']['f_measure']) == pytest.approx(statistics.mean(f[h]))
    assert float(rows[f'h={h}']['f_measure_std']) == pytest.approx(statistics.stdev(f[h]))
    assert float(rows[f'h={h}']['loss_std']) == pytest.approx(statistics.stdev(loss[h]))
    assert rows[f'h={h}']['n'] == '3'
  assert rows['h=3']['n'] == '2'
  assert float(rows['h=3']['f_measure']) == pytest.approx(0.15)
  assert float(rows['h=2']['param_count']) == 2000
  assert float(rows['h=1']['train_s']) == pytest.approx(10 / 10.0 + 10 / 5.0)
  assert float(rows['h=1']['wall_s']) == pytest.approx(7.5)
  assert rows['h=1']['h'] == '1'

  md = open(paths['md']).read()
  lines = {l.split('|')[1].strip(' `'): l for l in md.splitlines() if l.startswith('| `')}
  # f_measure: higher is better (h=2); loss, params: lower is better (h=3, h=1).
  assert f'**{statistics.mean(f[2]):.3f} ± {statistics.stdev(f[2]):.3f}**' in lines['h=2']
  assert f'**{statistics.mean(loss[3][:2]):.3f} ± {statistics.stdev(loss[3][:2]):.3f}**' \
      in lines['h=3']
  assert '**1,000 ± 0**' in lines['h=1']
  assert '2/3' in lines['h=3'] and 'Unfinished settings (1): `h=3`' in md
  header = [c.strip() for c in md.splitlines()[4].split('|')[1:-1]]
  assert header[:3] == ['setting', 'n', 'f_measure']  # the main metric first

  png = open(paths['png'], 'rb').read()
  assert png[:8] == b'\x89PNG\r\n\x1a\n'
  import matplotlib.image  # pylint: disable=g-import-not-at-top
  assert matplotlib.image.imread(paths['png']).shape[0] > 100


def test_plot_widens_for_long_setting_names_instead_of_squeezing_the_data(tmp_path):
  import matplotlib.image  # pylint: disable=g-import-not-at-top

  def width(names, columns=()):
    rows = [sweeps.Row(setting=n, overrides={}, n=2, seeds=2, stats={'f': (0.5 + i / 10, 0.01)},
                       metric='f', mode='max') for i, n in enumerate(names)]
    path = str(tmp_path / f'{len(names[0])}_{len(columns)}.png')
    sweeps.results_plot(rows, path, columns=columns)
    return matplotlib.image.imread(path).shape[1]

  short, long = ['a=1', 'a=2'], ['config=tagging_crnn,' + 'x' * 80 + f',a={i}' for i in (1, 2)]
  # ~0.055 in per character at 100 dpi: 80+ more characters need about 450 more pixels.
  assert width(long) - width(short) > 400
  assert width(long, columns=('f', 'f')) - width(short, columns=('f', 'f')) > 400


def test_results_with_a_fixed_min_metric_and_no_finished_run(tmp_path):
  path = _write_sweep(tmp_path, [{'h': 1}, {'h': 2}], config='c.py', metric='loss', mode='min')
  sweep = sweeps.load_sweep(path)
  root = str(tmp_path / 'root')
  runs = sweeps.plan(sweep, root)
  _fake_workdir(runs[0].workdir, num_steps=5, step=5, metrics={'loss': 2.0, 'f_measure': 0.9})
  paths = sweeps.write_results(root, runs, metric=sweep.metric, mode=sweep.mode)
  md = open(paths['md']).read()
  header = [c.strip() for c in md.splitlines()[2].split('|')[1:-1]]
  assert header[:3] == ['setting', 'n', 'loss']
  row2 = [l for l in md.splitlines() if l.startswith('| `h=2`')][0]
  assert '—' in row2 and '0/1' in row2
  assert os.path.getsize(paths['png']) > 0


def test_results_keep_rows_of_an_earlier_csv(tmp_path):
  path = _write_sweep(tmp_path, [{'h': 1}, {'h': 2}, {'h': 3}], config='c.py')
  sweep = sweeps.load_sweep(path)
  old_root, new_root = str(tmp_path / 'old'), str(tmp_path / 'new')
  old_runs = sweeps.plan(sweep, old_root, num_seeds=2)
  for run in old_runs:  # the earlier session finished h=1 and h=2
    h = dict(run.overrides)['h']
    if h < 3:
      _fake_workdir(run.workdir, num_steps=5, step=5,
                    metrics={'f_measure': 0.1 * h + 0.01 * run.seed, 'loss': 1.0})
  previous = sweeps.write_results(old_root, old_runs)['csv']

  new_runs = sweeps.plan(sweep, new_root, num_seeds=2)
  for run in new_runs:  # this session: h=2 again (its own numbers win) and h=3
    h = dict(run.overrides)['h']
    if h > 1:
      _fake_workdir(run.workdir, num_steps=5, step=5,
                    metrics={'f_measure': 0.5 + 0.1 * h + 0.02 * run.seed, 'loss': 2.0})
  paths = sweeps.write_results(new_root, new_runs, previous=previous)
  with open(paths['csv']) as fh:
    rows = {r['setting']: r for r in csv.DictReader(fh)}
  assert rows['h=1']['n'] == '2'
  assert float(rows['h=1']['f_measure']) == pytest.approx(0.105)
  assert float(rows['h=1']['f_measure_std']) == pytest.approx(statistics.stdev([0.1, 0.11]))
  assert float(rows['h=2']['f_measure']) == pytest.approx(0.71)  # not mixed with the old 0.205
  assert float(rows['h=3']['f_measure']) == pytest.approx(0.81)
  md = open(paths['md']).read()
  marked = [l for l in md.splitlines() if l.startswith('| `') and '†' in l]
  assert [l.split('`')[1] for l in marked] == ['h=1']
  assert f'† from earlier runs, as recorded in `{previous}`' in md
  assert 'Unfinished' not in md
  # The merged file can itself be the next session's --previous.
  again = sweeps.merge_previous(sweeps.collect(sweeps.plan(sweep, str(tmp_path / 'none'), 2)),
                                paths['csv'])
  assert {r.setting: r.n for r in again} == {'h=1': 2, 'h=2': 2, 'h=3': 2}
  assert again[2].metric == 'f_measure' and again[2].stats['loss'] == (2.0, 0.0)


@pytest.mark.parametrize('text,where', [
    ('name,n\nx,1\n', ':1: not a sweep results.csv'),
    ('setting,n,seeds,f,g\nx,1,1,0.5,0.1\n', ':1: columns after seeds'),
    ('setting,n,seeds,f,f_std\nx,1,1,0.5,0.1\ny,1,1,oops,0\n', ':3:'),
    ('setting,n,seeds,f,f_std\nx,1,1,0.5\n', ':2: 4 cells, the header has 5'),
])
def test_earlier_results_csv_errors_name_the_line(tmp_path, text, where):
  path = tmp_path / 'results.csv'
  path.write_text(text)
  with pytest.raises(sweeps.SweepError, match=re.escape(str(path) + where)):
    sweeps.read_results_csv(str(path))
  with pytest.raises(sweeps.SweepError, match='cannot read'):
    sweeps.read_results_csv(str(tmp_path / 'missing.csv'))
