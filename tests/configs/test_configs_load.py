"""Every config (and sweep entry) loads, documents itself and builds its pieces."""

import ast
import glob
import importlib
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from mir_jax.audio.features import FeatureConfig  # pylint: disable=wrong-import-position

CONFIGS = sorted(p for p in glob.glob(os.path.join(ROOT, 'configs', '*.py'))
                 if os.path.basename(p) not in ('__init__.py', 'base.py'))
SWEEPS = sorted(p for p in glob.glob(os.path.join(ROOT, 'configs', 'sweeps', '*.py'))
                if os.path.basename(p) != '__init__.py')


def _module(path):
  rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, '.')
  return importlib.import_module(rel)


def _check(config):
  from mir_jax import models, tasks  # pylint: disable=g-import-not-at-top
  fcfg = FeatureConfig.from_dict(config.features.to_dict())
  assert fcfg.frame_rate > 0
  task = tasks.build_task(config.task)
  models.build_model(config.model, num_outputs=task.num_outputs,
                     compute_dtype=config.train.compute_dtype)
  assert config.data.synth.train_seed != config.data.synth.eval_seed


def test_there_are_configs():
  assert any(p.endswith('onset_blstm.py') for p in CONFIGS)


@pytest.mark.parametrize('path', CONFIGS, ids=os.path.basename)
@pytest.mark.parametrize('arg', ['', 'tiny', 'small'])
def test_config_loads_and_builds(path, arg):
  mod = _module(path)
  config = mod.get_config(arg)
  _check(config)
  doc = mod.__doc__
  first_block = doc.strip().split('\n\n')[1].strip()
  assert first_block.startswith('python experiments/main.py --config=configs/' + os.path.basename(path))


def test_tiny_is_smaller():
  for path in CONFIGS:
    mod = _module(path)
    assert mod.get_config('tiny').train.num_steps < mod.get_config('').train.num_steps
    # 'small' (the ablation size) trains less than the default, on the same kind of data.
    small, full = mod.get_config('small'), mod.get_config('')
    assert small.train.num_steps < full.train.num_steps
    assert small.features.to_dict() == full.features.to_dict()


@pytest.mark.parametrize('path', [os.path.join(ROOT, 'configs', 'base.py')] + CONFIGS,
                         ids=os.path.basename)
def test_every_field_has_a_one_line_comment(path):
  """Each field a config file introduces carries a comment (base fields are documented in base)."""
  from configs import base  # pylint: disable=g-import-not-at-top
  documented = set(_flat_keys(base.get_config())) if not path.endswith('base.py') else set()
  src = open(path).read()
  lines = src.splitlines()
  missing = []
  nodes = [n for n in ast.walk(ast.parse(src))
           if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Attribute)]
  for node in sorted(nodes, key=lambda n: n.lineno):
    key = ast.unparse(node.targets[0]).split('.', 1)[-1]
    if key in documented:
      continue  # documented in base or at its first assignment above (tiny overrides)
    documented.add(key)
    line = lines[node.lineno - 1]
    above = lines[node.lineno - 2].strip() if node.lineno > 1 else ''
    if '#' not in line and not above.startswith('#'):
      missing.append(f'{os.path.basename(path)}:{node.lineno}: {line.strip()}')
  assert not missing, 'fields without a comment:\n' + '\n'.join(missing)


def _flat_keys(config, prefix=''):
  for key, value in config.items():
    if hasattr(value, 'items'):
      yield from _flat_keys(value, prefix + key + '.')
    yield prefix + key


def _set(config, key, value, where):
  node = config
  *parents, leaf = key.split('.')
  for p in parents:
    assert p in node, f'{where}: key {key} not in the config'
    node = node[p]
  assert leaf in node, f'{where}: key {key} not in the config'
  node[leaf] = value


@pytest.mark.parametrize('path', SWEEPS, ids=os.path.basename)
def test_sweep_entries_apply(path):
  """Every setting of every sweep is a valid override set of its base config."""
  sweeps = pytest.importorskip('mir_jax.sweeps')
  sweep = sweeps.load_sweep(path)
  missing = sorted({c for c in [sweep.config] + [s['config'] for s in sweep.settings if 'config' in s]
                    if not os.path.exists(os.path.join(ROOT, c))})
  if missing:
    pytest.skip(f'base config(s) not written yet: {missing}')
  base = _module(os.path.join(ROOT, sweep.config))
  for setting in sweep.settings:
    setting = dict(setting)
    # A setting may switch the experiment file itself (e.g. model families).
    module = _module(os.path.join(ROOT, setting.pop('config'))) if 'config' in setting else base
    config = module.get_config(setting.pop('config_arg', sweep.config_arg))
    for key, value in {**sweep.overrides, **setting}.items():
      _set(config, key, value, os.path.basename(path))
    _check(config)


def test_unknown_override_and_bad_type_name_the_key(tmp_path):
  base = [sys.executable, os.path.join(ROOT, 'experiments', 'main.py'),
          '--config=configs/onset_blstm.py:tiny', f'--workdir={tmp_path}']
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu'}
  bad_key = subprocess.run(base + ['--config.model.hiden_size=3'], capture_output=True,
                           text=True, cwd=ROOT, env=env, timeout=120)
  assert bad_key.returncode != 0
  assert 'config.model.hiden_size' in bad_key.stderr
  bad_type = subprocess.run(base + ['--config.model.hidden_size=abc'], capture_output=True,
                            text=True, cwd=ROOT, env=env, timeout=120)
  assert bad_type.returncode != 0
  assert 'config.model.hidden_size' in bad_type.stderr
  assert not os.listdir(tmp_path)  # nothing ran
