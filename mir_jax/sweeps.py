"""Ablation sweeps: expansion (product, zip, concat), run names, run status, results.

A sweep file (``configs/sweeps/NAME.py``) has

* ``get_config(arg) -> ConfigDict`` made with :func:`sweep_config`: the base
  experiment config file (``config``, e.g. ``'configs/onset_blstm.py'``), its
  argument (``config_arg``, e.g. ``'tiny'``; the sweep's own ``arg`` is passed on
  by default), fixed overrides applied to every run, and the metric to plot;
* ``get_sweep() -> list[dict]`` of overrides, one dict per setting, keys are
  config paths (``'features.log'``). The special key ``'config'`` switches the
  base config file for that setting, so one sweep can span tasks.

``sweep_config(evals={'len20_': {'data.synth.duration': 20.0}})`` also scores
every trained run again (``--mode=eval`` with those overrides), its metrics
merged into ``eval_metrics.json`` as ``len20_<name>``: e.g. on longer clips than
the run trained on, without training again.

``experiments/sweep.py`` turns each setting x seed into a :class:`Run` with its
own workdir (named by :func:`run_name`), runs ``experiments/main.py`` for it,
skips finished runs (:func:`run_status`), and :func:`collect` /
:func:`write_results` summarise the ``eval_metrics.json`` files.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import importlib.util
import io
import itertools
import json
import math
import os
import re
import shlex
import sys
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import ml_collections

from mir_jax.atomic import atomic_write

Overrides = dict[str, Any]
Factor = Union[Sequence[Mapping[str, Any]], Mapping[str, Sequence[Any]]]

CONFIG_KEY = 'config'  # the override key that switches the base config file
SEED_KEY = 'seed'
RUN_FILE = 'sweep_run.json'  # what the runner records in each workdir
LOG_FILE = 'sweep.log'  # the run's stdout and stderr, appended over restarts
MAX_NAME = 120  # longer run names are cut and hashed (filesystems allow 255 bytes)
_SAFE = re.compile(r'[^A-Za-z0-9._,=+-]')


class SweepError(ValueError):
  """A bad sweep file, override or workdir; the message names it."""


# ---------------------------------------------------------------- expansion

def axis(key: str, values: Sequence[Any]) -> list[Overrides]:
  """``[{key: v} for v in values]``: one parameter's values."""
  if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
    raise SweepError(f'values of {key!r} must be a list, got {values!r}')
  values = list(values)
  if not values:
    raise SweepError(f'values of {key!r} are empty')
  return [{key: v} for v in values]


def _settings(factor: Factor, how: str) -> list[Overrides]:
  """A list of override dicts, or a ``{key: values}`` dict combined by ``how``."""
  if isinstance(factor, Mapping):
    axes = [axis(k, v) for k, v in factor.items()]
    return product(*axes) if how == 'product' else zip_(*axes)
  if isinstance(factor, (str, bytes)) or not isinstance(factor, Iterable):
    raise SweepError(f'a sweep factor must be a list of dicts or a dict of lists, got {factor!r}')
  out = []
  for item in factor:
    if not isinstance(item, Mapping):
      raise SweepError(f'a sweep setting must be a dict of overrides, got {item!r}')
    out.append(dict(item))
  return out


def _merge(parts: Sequence[Mapping[str, Any]]) -> Overrides:
  merged: Overrides = {}
  for part in parts:
    for key, value in part.items():
      if key in merged:
        raise SweepError(f'key {key!r} is set by two factors ({merged[key]!r} and {value!r})')
      merged[key] = value
  return merged


def product(*factors: Factor) -> list[Overrides]:
  """Cartesian product: every combination of one setting from each factor.

  A factor is a list of override dicts or a ``{key: [values]}`` dict (itself a
  product of its keys). ``product({'a': [1, 2]}, [{'b': 3}, {'b': 4, 'c': 0}])``
  gives 4 settings, the first factor varying slowest.
  """
  lists = [_settings(f, 'product') for f in factors]
  return [_merge(parts) for parts in itertools.product(*lists)]


def zip_(*factors: Factor) -> list[Overrides]:
  """Settings taken together: the i-th setting merges the i-th of each factor.

  A ``{key: [values]}`` factor zips its keys. Factors must have equal lengths.
  """
  lists = [_settings(f, 'zip') for f in factors]
  lengths = {len(l) for l in lists}
  if len(lengths) > 1:
    raise SweepError(f'zip_ needs factors of equal length, got {[len(l) for l in lists]}')
  return [_merge(parts) for parts in zip(*lists)]


def concat(*factors: Factor) -> list[Overrides]:
  """The settings of each factor one after the other (duplicates dropped)."""
  out: list[Overrides] = []
  seen = set()
  for factor in factors:
    for setting in _settings(factor, 'product'):
      key = _canonical(setting)
      if key not in seen:
        seen.add(key)
        out.append(setting)
  return out


def with_seeds(settings: Sequence[Mapping[str, Any]], num_seeds: int) -> list[Overrides]:
  """Each setting with ``seed=0..num_seeds-1`` (seed varies fastest)."""
  if num_seeds < 1:
    raise SweepError(f'--seeds must be >= 1, got {num_seeds}')
  out = []
  for setting in settings:
    if SEED_KEY in setting:
      raise SweepError(f'setting {dict(setting)} sets {SEED_KEY!r} itself; use --seeds instead')
    out.extend({**setting, SEED_KEY: s} for s in range(num_seeds))
  return out


# ----------------------------------------------------------------- names, flags

def _canonical(overrides: Mapping[str, Any]) -> str:
  return json.dumps({k: overrides[k] for k in sorted(overrides)}, sort_keys=True, default=repr)


def _value_text(key: str, value: Any) -> str:
  if key == CONFIG_KEY:
    path, _, arg = str(value).partition(':')
    stem = os.path.splitext(os.path.basename(path))[0]
    return stem + (f':{arg}' if arg else '')
  if isinstance(value, (tuple, list)):
    return '+'.join(_value_text(key, v) for v in value) or '()'
  if isinstance(value, float):
    return repr(value)
  return str(value)


def run_name(overrides: Mapping[str, Any], max_len: int = MAX_NAME) -> str:
  """A filesystem-safe folder name ``k=v,k=v`` for ``overrides``.

  Keys are sorted with ``config`` first and ``seed`` last, so equal overrides
  give equal names in any order. Characters outside ``[A-Za-z0-9._,=+-]`` become
  ``_``; then (or when the name is longer than ``max_len``) an 8-hex hash of the
  exact overrides is appended so that different overrides never share a name.
  """
  if not overrides:
    return 'default'
  keys = sorted(overrides, key=lambda k: (k != CONFIG_KEY, k == SEED_KEY, k))
  raw = ','.join(f'{k}={_value_text(k, overrides[k])}' for k in keys)
  safe = _SAFE.sub('_', raw)
  lossy = safe != raw or any(isinstance(overrides[k], (tuple, list)) or overrides[k] is None
                             for k in keys)
  if not lossy and len(safe) <= max_len:
    return safe
  digest = hashlib.sha1(_canonical(overrides).encode()).hexdigest()[:8]
  return safe[:max_len - 9] + '-' + digest


def flag_value(value: Any) -> str:
  """``value`` as ``ml_collections.config_flags`` parses it back (tuples via literal_eval)."""
  if isinstance(value, bool):
    return str(value)
  if isinstance(value, (tuple, list)):
    return repr(tuple(value))
  if isinstance(value, float):
    return repr(value)
  if value is None:
    return 'None'
  return str(value)


def parse_value(text: str) -> Any:
  """Command-line ``key=VALUE`` text to a Python value: a literal if it is one, else a string."""
  import ast  # pylint: disable=g-import-not-at-top
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def flatten(tree: Any, prefix: str = '') -> Overrides:
  """``{'train': {'num_steps': 5}}`` (dict or ConfigDict) -> ``{'train.num_steps': 5}``."""
  if isinstance(tree, ml_collections.ConfigDict):
    tree = tree.to_dict()
  out: Overrides = {}
  for key, value in (tree or {}).items():
    name = f'{prefix}{key}'
    if isinstance(value, Mapping) and value:
      out.update(flatten(value, name + '.'))
    else:
      out[name] = value
  return out


# ----------------------------------------------------------------- sweep files

def sweep_config(config: str, config_arg: str = '', *, metric: str = '', mode: str = 'max',
                 overrides: Optional[Mapping[str, Any]] = None,
                 columns: Sequence[str] = (),
                 evals: Optional[Mapping[str, Mapping[str, Any]]] = None,
                 plot: Sequence[str] = ()) -> ml_collections.ConfigDict:
  """What a sweep file's ``get_config`` returns.

  Args:
    config: the base experiment config file, relative to the repository root.
    config_arg: its argument (``'tiny'``), given to every setting's config file.
    metric: the eval metric plotted; '' = each run's ``checkpoint.best_metric``.
    mode: 'max' or 'min': which ``metric`` value is best.
    overrides: fixed ``{'train.num_steps': 100}`` applied to every run (not in names).
    columns: eval metrics shown in results.md, in order; () = all.
    evals: ``{prefix: overrides}``: after training, each run is evaluated again with
      ``--mode=eval --config.eval.metrics_prefix=PREFIX`` and these overrides.
    plot: columns drawn in results.png, one panel each; () = the main metric.
  """
  if mode not in ('max', 'min'):
    raise SweepError(f"sweep mode must be 'max' or 'min', got {mode!r}")
  c = ml_collections.ConfigDict()
  c.config = config
  c.config_arg = config_arg or ''
  c.metric = metric
  c.mode = mode
  nested: dict = {}
  for key, value in (overrides or {}).items():
    node = nested
    *parents, leaf = key.split('.')
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = value
  c.overrides = ml_collections.ConfigDict(nested)
  c.columns = tuple(columns)
  c.evals = tuple((prefix, tuple(dict(ov).items())) for prefix, ov in (evals or {}).items())
  c.plot = tuple(plot)
  return c


_PREFIX_RE = re.compile(r'^[A-Za-z][A-Za-z0-9_]*_$')


def _check_evals(path: str, evals: Any) -> tuple:
  """``((prefix, ((key, value), ...)), ...)`` from a sweep's ``evals``, checked."""
  out = []
  for item in evals or ():
    try:
      prefix, overrides = item
      overrides = tuple((str(k), v) for k, v in overrides)
    except (TypeError, ValueError) as e:
      raise SweepError(f'{path}: evals must map prefix -> {{key: value}}, got {item!r}') from e
    if not _PREFIX_RE.match(str(prefix)):
      raise SweepError(f"{path}: eval prefix {prefix!r} must be letters, digits and '_', "
                       "ending in '_' (e.g. 'len20_')")
    if any(not k or k in (CONFIG_KEY, SEED_KEY) for k, _ in overrides):
      raise SweepError(f'{path}: eval {prefix!r} overrides must be config keys other than '
                       f'{CONFIG_KEY!r} and {SEED_KEY!r}: {dict(overrides)}')
    out.append((str(prefix), overrides))
  if len({p for p, _ in out}) != len(out):
    raise SweepError(f'{path}: eval prefixes must differ: {[p for p, _ in out]}')
  return tuple(out)


@dataclasses.dataclass
class Sweep:
  """A loaded sweep file."""
  path: str
  arg: str
  config: str  # base config file
  config_arg: str
  settings: list[Overrides]
  overrides: Overrides  # fixed, every run
  metric: str = ''
  mode: str = 'max'
  columns: tuple = ()
  evals: tuple = ()  # ((prefix, ((key, value), ...)), ...): evaluations after training
  plot: tuple = ()  # columns of results.png

  @property
  def name(self) -> str:
    return os.path.splitext(os.path.basename(self.path))[0]


def load_module(path: str):
  """Imports a Python file by path (the repository root must be importable)."""
  if not os.path.isfile(path):
    raise SweepError(f'sweep file {path} does not exist')
  name = '_sweep_' + re.sub(r'\W', '_', os.path.abspath(path))
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def load_sweep(spec: str) -> Sweep:
  """Loads ``path.py[:arg]``; checks it has get_config and get_sweep and that settings are dicts."""
  path, _, arg = spec.partition(':')
  module = load_module(path)
  for fn in ('get_config', 'get_sweep'):
    if not callable(getattr(module, fn, None)):
      raise SweepError(f'{path} has no {fn}() function')
  cfg = module.get_config(arg or None)
  get = cfg.get if hasattr(cfg, 'get') else (lambda k, d=None: getattr(cfg, k, d))
  if not get('config'):
    raise SweepError(f'{path}: get_config() must give the base experiment config file as `config`')
  settings = _settings(module.get_sweep(), 'product')
  if not settings:
    raise SweepError(f'{path}: get_sweep() returned no settings')
  mode = get('mode', 'max') or 'max'
  if mode not in ('max', 'min'):
    raise SweepError(f"{path}: mode must be 'max' or 'min', got {mode!r}")
  config_arg = get('config_arg', None)
  return Sweep(path=path, arg=arg, config=str(get('config')),
               config_arg=arg if config_arg is None else str(config_arg),
               settings=settings, overrides=flatten(get('overrides', None)),
               metric=str(get('metric', '') or ''), mode=mode,
               columns=tuple(get('columns', ()) or ()),
               evals=_check_evals(path, get('evals', ())), plot=tuple(get('plot', ()) or ()))


# ----------------------------------------------------------------- runs

@dataclasses.dataclass(frozen=True)
class Run:
  """One setting at one seed, in its own workdir."""
  name: str  # workdir folder name (overrides incl. seed)
  setting: str  # name of the overrides without the seed (rows of results)
  config: str  # 'configs/x.py' or 'configs/x.py:arg'
  overrides: tuple  # ((key, value), ...) passed as --config.key=value, fixed ones last
  workdir: str
  setting_overrides: tuple = ()  # the sweep's own overrides of this setting (no seed)
  seed: Optional[int] = None
  evals: tuple = ()  # ((prefix, ((key, value), ...)), ...) run after training

  def args(self, main: str) -> list[str]:
    """The arguments after the Python executable."""
    return ([main, f'--config={self.config}', f'--workdir={self.workdir}']
            + [f'--config.{k}={flag_value(v)}' for k, v in self.overrides])

  @property
  def eval_prefixes(self) -> list[str]:
    return [prefix for prefix, _ in self.evals]

  def eval_args(self, main: str, prefix: str) -> list[str]:
    """The arguments of the evaluation ``prefix`` of :attr:`evals`."""
    overrides = dict(self.evals)[prefix]
    return (self.args(main) + ['--mode=eval', f'--config.eval.metrics_prefix={prefix}']
            + [f'--config.{k}={flag_value(v)}' for k, v in overrides])

  def command(self, main: str, python: str = sys.executable) -> list[str]:
    return [python] + self.args(main)

  def printable(self, main: str, python: str = 'python') -> str:
    """A shell command that repeats this run alone (or resumes it)."""
    return shlex.join(self.command(main, python))


def _config_spec(config: str, arg: str) -> str:
  return config if ':' in config or not arg else f'{config}:{arg}'


def plan(sweep: Sweep, root: str, num_seeds: int = 1,
         extra_overrides: Optional[Mapping[str, Any]] = None) -> list[Run]:
  """The runs of ``sweep``: each setting at seeds 0..num_seeds-1, under ``root``.

  ``extra_overrides`` (e.g. from ``--set``) join the sweep's fixed overrides; a
  setting's own value wins over a fixed one. Names must be unique.
  """
  fixed = {**sweep.overrides, **dict(extra_overrides or {})}
  if CONFIG_KEY in fixed or SEED_KEY in fixed:
    raise SweepError(f'fixed overrides may not set {CONFIG_KEY!r} or {SEED_KEY!r}: use the sweep '
                     'file or --seeds')
  runs, names = [], {}
  for setting in sweep.settings:
    if any(not isinstance(k, str) or not k for k in setting):
      raise SweepError(f'{sweep.path}: override keys must be non-empty strings: {setting}')
    setting_name = run_name(setting)
    for seeded in with_seeds([setting], num_seeds):
      name = run_name(seeded)
      if name in names:
        raise SweepError(f'{sweep.path}: settings {names[name]} and {seeded} have the same '
                         f'workdir name {name!r}')
      names[name] = seeded
      config = _config_spec(str(seeded.get(CONFIG_KEY, sweep.config)), sweep.config_arg)
      own = {k: v for k, v in seeded.items() if k != CONFIG_KEY}
      merged = {**{k: v for k, v in fixed.items() if k not in own}, **own}
      runs.append(Run(name=name, setting=setting_name, config=config,
                      overrides=tuple(merged.items()), workdir=os.path.join(root, name),
                      setting_overrides=tuple(setting.items()), seed=seeded[SEED_KEY],
                      evals=sweep.evals))
  return runs


# ----------------------------------------------------------------- status

def _read_json(path: str) -> Optional[dict]:
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def run_status(workdir: str, evals: Sequence[str] = ()) -> str:
  """'finished', 'trained' (evaluations ``evals`` missing), 'partial' (started, to be
  resumed) or 'new'.

  Trained means the training loop's final evaluation is on disk:
  ``eval_metrics.json`` has ``step`` equal to (or past) ``train.num_steps`` of the
  run's ``config.json`` (interval evaluations have smaller steps; ``--mode=eval``
  writes the best checkpoint's step, so a rerun then re-evaluates the final state).
  Finished: trained, and each prefix in ``evals`` has its ``PREFIXstep`` there.
  """
  if not os.path.isdir(workdir):
    return 'new'
  metrics = _read_json(os.path.join(workdir, 'eval_metrics.json'))
  config = _read_json(os.path.join(workdir, 'config.json'))
  try:
    done = int(metrics['step']) >= int(config['train']['num_steps'])
  except (TypeError, KeyError, ValueError):
    done = False
  if done:
    return 'trained' if missing_evals(metrics, evals) else 'finished'
  return 'partial' if os.listdir(workdir) else 'new'


def missing_evals(metrics: Optional[Mapping[str, Any]], prefixes: Sequence[str]) -> list[str]:
  """The evaluation ``prefixes`` whose metrics are not yet in ``metrics``."""
  return [p for p in prefixes if f'{p}step' not in (metrics or {})]


def write_json_atomic(path: str, obj: Any) -> None:
  """JSON via a temp file in the same folder and ``os.replace`` (crash-safe)."""
  _write_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=repr) + '\n')


_write_atomic = atomic_write


# ----------------------------------------------------------------- collection

_PARAMS_RE = re.compile(r'model has ([\d,]+) parameters')
COST_COLUMNS = ('param_count', 'train_s', 'wall_s')


def _train_seconds(workdir: str) -> Optional[float]:
  """Seconds of training from metrics.jsonl: sum of logged steps / steps_per_second.

  Steps logged twice (redone after a resume) count once; evaluation and
  start-up time are not included (``wall_s`` has them).
  """
  path = os.path.join(workdir, 'metrics.jsonl')
  if not os.path.exists(path):
    return None
  total, last = 0.0, 0
  with open(path) as f:
    for line in f:
      try:
        row = json.loads(line)
      except ValueError:
        continue  # a line cut by a kill
      if row.get('split') != 'train' or not row.get('steps_per_second'):
        continue
      step = int(row.get('step', 0))
      if step > last:
        total += (step - last) / float(row['steps_per_second'])
        last = step
  return total if last else None


def _param_count(workdir: str, metrics: Mapping[str, Any]) -> Optional[int]:
  for source in (metrics, _read_json(os.path.join(workdir, 'model.json')) or {}):
    if isinstance(source.get('param_count'), (int, float)):
      return int(source['param_count'])
  log = os.path.join(workdir, LOG_FILE)
  if os.path.exists(log):
    with open(log, errors='replace') as f:
      found = _PARAMS_RE.findall(f.read())
    if found:
      return int(found[-1].replace(',', ''))
  return None


def read_run(run: Run, metric: str = '') -> dict:
  """A finished run's numbers: eval metrics, main metric name, params, seconds.

  ``{'status': ..., 'metrics': {name: float}, 'metric': name, 'mode': 'max'|'min'}``.
  """
  # Trained is enough: the columns of evaluations still missing stay empty.
  status = run_status(run.workdir)
  out = {'run': run, 'status': status, 'metrics': {}, 'metric': metric, 'mode': ''}
  if status != 'finished':
    return out
  raw = _read_json(os.path.join(run.workdir, 'eval_metrics.json')) or {}
  config = _read_json(os.path.join(run.workdir, 'config.json')) or {}
  values = {k: float(v) for k, v in raw.items()
            if k not in ('step', 'param_count') and not k.endswith('_step')
            and isinstance(v, (int, float)) and not isinstance(v, bool)}
  params = _param_count(run.workdir, raw)
  if params is not None:
    values['param_count'] = float(params)
  train_s = _train_seconds(run.workdir)
  if train_s is not None:
    values['train_s'] = train_s
  record = _read_json(os.path.join(run.workdir, RUN_FILE)) or {}
  wall = [i.get('wall_s') for i in record.get('invocations', [])  # training, not later evals
          if i.get('wall_s') is not None and '--mode=eval' not in (i.get('args') or ())]
  if wall:
    values['wall_s'] = float(sum(wall))
  ckpt = config.get('checkpoint', {}) if isinstance(config, dict) else {}
  out['metrics'] = values
  out['metric'] = metric or ckpt.get('best_metric', '') or 'loss'
  out['mode'] = ckpt.get('best_mode', 'max') if not metric else ''
  return out


def lower_is_better(column: str) -> bool:
  """Losses, errors and costs are better when smaller."""
  return (column == 'loss' or column.endswith('_loss') or 'error' in column
          or column in COST_COLUMNS)


@dataclasses.dataclass
class Row:
  """One setting: its overrides and per-column (mean, std) over finished seeds."""
  setting: str
  overrides: dict
  n: int
  seeds: int  # runs planned
  stats: dict  # column -> (mean, std)
  metric: str  # main metric
  mode: str
  source: str = ''  # earlier results.csv the row was taken from ('' = runs under the root)


def collect(runs: Sequence[Run], metric: str = '', mode: str = 'max') -> list[Row]:
  """One :class:`Row` per setting (in sweep order): mean and sample std over seeds.

  The std uses ``ddof=1`` (0 for a single seed). Unfinished runs are left out
  and counted in ``seeds - n``.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  groups: dict[str, list] = {}
  for run in runs:
    groups.setdefault(run.setting, []).append(read_run(run, metric))
  rows = []
  for setting, records in groups.items():
    done = [r for r in records if r['status'] == 'finished']
    stats = {}
    for col in sorted({c for r in done for c in r['metrics']}):
      vals = np.array([r['metrics'][col] for r in done if col in r['metrics']], np.float64)
      if vals.size:
        std = float(np.std(vals, ddof=1)) if vals.size > 1 else 0.0
        stats[col] = (float(np.mean(vals)), std)
    main = next((r['metric'] for r in done), metric) or metric
    row_mode = (next((r['mode'] for r in done if r['mode']), '') if not metric else mode) or mode
    rows.append(Row(setting=setting, overrides=dict(records[0]['run'].setting_overrides),
                    n=len(done), seeds=len(records), stats=stats, metric=main, mode=row_mode))
  return rows


def read_results_csv(path: str) -> dict[str, tuple[int, int, dict]]:
  """``setting -> (n, seeds, {column: (mean, std)})`` from a ``results.csv`` this module wrote."""
  try:
    with open(path, newline='') as f:
      lines = list(csv.reader(f))
  except OSError as e:
    raise SweepError(f'{path}: cannot read earlier results ({e.strerror})') from e
  if not lines or lines[0][:1] != ['setting'] or 'n' not in lines[0] or 'seeds' not in lines[0]:
    raise SweepError(f'{path}:1: not a sweep results.csv (header must start with setting and '
                     f'hold n, seeds)')
  header = lines[0]
  first = header.index('seeds') + 1
  columns = header[first::2]
  if header[first + 1::2] != [f'{c}_std' for c in columns]:
    raise SweepError(f'{path}:1: columns after seeds must come in pairs NAME, NAME_std')
  out = {}
  for number, cells in enumerate(lines[1:], start=2):
    if not cells:
      continue
    if len(cells) != len(header):
      raise SweepError(f'{path}:{number}: {len(cells)} cells, the header has {len(header)}')
    try:
      n, seeds = int(cells[header.index('n')]), int(cells[header.index('seeds')])
      stats = {c: (float(cells[first + 2 * i]), float(cells[first + 2 * i + 1] or 0.0))
               for i, c in enumerate(columns) if cells[first + 2 * i] != ''}
    except ValueError as e:
      raise SweepError(f'{path}:{number}: {e}') from e
    out[cells[0]] = (n, seeds, stats)
  return out


def merge_previous(rows: Sequence[Row], path: str, columns: Sequence[str] = ()) -> list[Row]:
  """Rows with no finished run under the root take their numbers from an earlier results.csv.

  The sweep's working folders need not survive between sessions; the committed
  table does. A setting with at least one finished run keeps its own numbers
  (no mixing of seeds from two places). Such a row's main metric is the first
  of ``columns`` (else of the file's columns) it has a value for.
  """
  previous = read_results_csv(path)
  out = []
  for row in rows:
    old = previous.get(row.setting)
    if row.n or old is None or not old[0]:
      out.append(row)
      continue
    n, seeds, stats = old
    order = [c for c in columns if c in stats] or [c for c in stats if c not in COST_COLUMNS]
    metric = next((c for c in order if c not in COST_COLUMNS), row.metric)
    mode = 'min' if lower_is_better(metric) else 'max'
    out.append(dataclasses.replace(row, n=n, seeds=seeds, stats=stats, metric=metric, mode=mode,
                                   source=path))
  return out


def _columns(rows: Sequence[Row], columns: Sequence[str] = ()) -> list[str]:
  present = {c for r in rows for c in r.stats}
  if columns:
    order = [c for c in columns if c in present]
  else:
    mains = [r.metric for r in rows if r.metric in present]
    rest = sorted(present - set(mains) - set(COST_COLUMNS))
    order = list(dict.fromkeys(mains)) + rest
  return order + [c for c in COST_COLUMNS if c in present and c not in order]


def best_rows(rows: Sequence[Row], column: str, mode: Optional[str] = None) -> set[str]:
  """Settings whose mean of ``column`` is best (ties all count)."""
  vals = {r.setting: r.stats[column][0] for r in rows
          if column in r.stats and math.isfinite(r.stats[column][0])}
  if not vals:
    return set()
  if mode is None:
    main_modes = {r.mode for r in rows if r.metric == column}
    mode = ('min' if lower_is_better(column) else 'max') if not main_modes else main_modes.pop()
  best = min(vals.values()) if mode == 'min' else max(vals.values())
  return {s for s, v in vals.items() if v == best}


def _fmt(column: str, value: float) -> str:
  if column == 'param_count':
    return f'{value:,.0f}'
  if column in ('train_s', 'wall_s'):
    return f'{value:.1f}'
  # Scores are fractions: fixed decimals keep the ± columns aligned and comparable.
  return f'{value:.3f}' if abs(value) < 10 else f'{value:.4g}'


def results_csv(rows: Sequence[Row], columns: Sequence[str]) -> str:
  """CSV text: setting, its override values, n, then ``col`` (mean) and ``col_std``."""
  keys = list(dict.fromkeys(k for r in rows for k in r.overrides))
  buf = io.StringIO()
  writer = csv.writer(buf, lineterminator='\n')
  writer.writerow(['setting'] + keys + ['n', 'seeds']
                  + [x for c in columns for x in (c, f'{c}_std')])
  for r in rows:
    cells = [r.setting] + [flag_value(r.overrides[k]) if k in r.overrides else '' for k in keys]
    cells += [r.n, r.seeds]
    for c in columns:
      cells += [repr(r.stats[c][0]), repr(r.stats[c][1])] if c in r.stats else ['', '']
    writer.writerow(cells)
  return buf.getvalue()


def results_markdown(rows: Sequence[Row], columns: Sequence[str], title: str = '') -> str:
  """A Markdown table: mean ± std per column, the best mean per column in bold."""
  best = {c: best_rows(rows, c) for c in columns}
  lines = [f'# {title}', ''] if title else []
  lines.append('Mean ± std over seeds (n = finished seeds); **bold** = best per column '
               '(lower for loss, params and seconds).')
  lines.append('')
  lines.append('| setting | n | ' + ' | '.join(columns) + ' |')
  lines.append('|---|---|' + '---|' * len(columns))
  for r in rows:
    cells = []
    for c in columns:
      if c not in r.stats:
        cells.append('—')
        continue
      mean, std = r.stats[c]
      text = _fmt(c, mean) + (f' ± {_fmt(c, std)}' if r.n > 1 else '')
      cells.append(f'**{text}**' if r.setting in best[c] else text)
    n = f'{r.n}' if r.n == r.seeds else f'{r.n}/{r.seeds}'
    mark = ' †' if r.source else ''
    lines.append(f'| `{r.setting}`{mark} | {n} | ' + ' | '.join(cells) + ' |')
  sources = list(dict.fromkeys(r.source for r in rows if r.source))
  if sources:
    lines += ['', '† from earlier runs, as recorded in ' + ', '.join(f'`{s}`' for s in sources)
              + ' (their workdirs are not under this root).']
  missing = [r.setting for r in rows if r.n < r.seeds]
  if missing:
    lines += ['', f'Unfinished settings ({len(missing)}): ' + ', '.join(f'`{m}`' for m in missing)]
  return '\n'.join(lines) + '\n'


def results_plot(rows: Sequence[Row], path: str, title: str = '',
                 columns: Sequence[str] = ()) -> None:
  """PNG of each setting's main metric (mean ± std), one panel per main metric, or one
  panel per column of ``columns`` (the same settings side by side)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  if columns:
    metrics = list(columns)
  else:
    metrics = list(dict.fromkeys(r.metric for r in rows if r.metric in r.stats)) or ['']
  height = max(2.5, 0.35 * len(rows) + 1.2)
  width = 6 if len(metrics) < 3 else 4.5  # inches of data area per panel
  # Setting names are long (up to MAX_NAME characters at 7 pt, ~0.055 in each): the figure
  # grows by the labels' width per labelled panel instead of taking it out of the data area.
  label_in = 0.055 * max((len(r.setting) for r in rows), default=0)
  labelled = 1 if columns else len(metrics)
  fig, axes = plt.subplots(1, len(metrics),
                           figsize=(width * len(metrics) + label_in * labelled, height),
                           squeeze=False, sharey=bool(columns))
  for i, (ax, metric) in enumerate(zip(axes[0], metrics)):
    if columns:  # every setting on every panel's y axis, so the panels line up
      labels = [r.setting for r in rows]
      sel = [(y, r) for y, r in enumerate(rows) if metric in r.stats]
    else:
      labels = [r.setting for r in rows if r.metric == metric and metric in r.stats]
      sel = list(enumerate(r for r in rows if r.metric == metric and metric in r.stats))
    ax.errorbar([r.stats[metric][0] for _, r in sel], [y for y, _ in sel],
                xerr=[r.stats[metric][1] for _, r in sel], fmt='o', capsize=3)
    if not columns or i == 0:
      ax.set_yticks(range(len(labels)))
      ax.set_yticklabels(labels, fontsize=7)
      ax.invert_yaxis()
    ax.set_xlabel(metric or '(no finished runs)')
    ax.grid(axis='x', alpha=0.3)
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  buf = io.BytesIO()
  fig.savefig(buf, format='png', dpi=100)
  plt.close(fig)
  _write_atomic(path, buf.getvalue())


def write_results(root: str, runs: Sequence[Run], *, metric: str = '', mode: str = 'max',
                  columns: Sequence[str] = (), title: str = '',
                  previous: str = '', plot: Sequence[str] = ()) -> dict[str, str]:
  """Writes ``results.csv``, ``results.md`` and ``results.png`` under ``root``; returns their paths.

  ``previous``: an earlier results.csv whose rows stand in for settings with no
  finished run here (see :func:`merge_previous`). ``plot``: results.png's columns.
  """
  rows = collect(runs, metric, mode)
  if previous:
    rows = merge_previous(rows, previous, columns)
  cols = _columns(rows, columns)
  paths = {k: os.path.join(root, f'results.{k}') for k in ('csv', 'md', 'png')}
  _write_atomic(paths['csv'], results_csv(rows, cols))
  _write_atomic(paths['md'], results_markdown(rows, cols, title))
  results_plot(rows, paths['png'], title, plot)
  return paths


# ----------------------------------------------------------------- execution

class Interrupted(Exception):
  """The runner got SIGINT or SIGTERM; its children were stopped."""

  def __init__(self, signum: int):
    super().__init__(f'interrupted by signal {signum}')
    self.signum = signum


def cpu_slots(parallel: int, cpus: Optional[Sequence[int]] = None) -> list[tuple[int, ...]]:
  """The CPUs of each of ``parallel`` run slots: this process's CPUs in contiguous, disjoint
  groups (shared round-robin when there are fewer CPUs than slots)."""
  if cpus is None:
    if not hasattr(os, 'sched_getaffinity'):
      raise SweepError('--pin needs os.sched_setaffinity (Linux); run without --pin here')
    cpus = os.sched_getaffinity(0)
  cpus = sorted(cpus)
  if len(cpus) < parallel:
    return [(cpus[i % len(cpus)],) for i in range(parallel)]
  bounds = [round(i * len(cpus) / parallel) for i in range(parallel + 1)]
  return [tuple(cpus[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:])]


def _child_setup(cpus: Optional[Sequence[int]]):
  """``preexec_fn``: die with the parent, and keep to ``cpus`` when given."""
  def setup():
    _die_with_parent()
    if cpus:
      os.sched_setaffinity(0, cpus)
  return setup


def _die_with_parent():
  """In the child: get SIGTERM if the runner dies (even by SIGKILL); Linux only."""
  try:
    import ctypes  # pylint: disable=g-import-not-at-top
    import signal  # pylint: disable=g-import-not-at-top
    libc = ctypes.CDLL('libc.so.6', use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
  except Exception:  # pylint: disable=broad-except
    pass


def check_workdir(run: Run, args: Sequence[str]) -> None:
  """Refuses a workdir that an earlier, different command started (results would mix)."""
  record = _read_json(os.path.join(run.workdir, RUN_FILE))
  if record and record.get('args') and list(record['args']) != list(args):
    raise SweepError(
        f'{run.workdir} was started by a different command:\n  {shlex.join(record["args"])}\n'
        f'now:\n  {shlex.join(args)}\nremove the folder or use another --root')


def _record(run: Run, args: Sequence[str], invocation: Optional[dict] = None) -> None:
  path = os.path.join(run.workdir, RUN_FILE)
  record = _read_json(path) or {}
  record.update({'name': run.name, 'setting': run.setting, 'config': run.config,
                 'overrides': dict(run.overrides), 'args': list(args)})
  record.setdefault('invocations', [])
  if invocation is not None:
    record['invocations'].append(invocation)
  write_json_atomic(path, record)


def execute(runs: Sequence[Run], *, main: str, parallel: int = 1,
            python: str = sys.executable, echo=print, env: Optional[Mapping[str, str]] = None,
            cwd: Optional[str] = None, poll_s: float = 0.2, term_timeout_s: float = 120.0,
            pin: bool = False) -> dict[str, str]:
  """Runs every unfinished run, ``parallel`` at a time; returns ``{name: outcome}``.

  Outcomes: 'skipped' (already finished), 'finished', 'failed'. A run is its
  training command, then one ``--mode=eval`` command per missing entry of its
  :attr:`Run.evals` (a trained run only gets those). Each run's
  output is appended to ``WORKDIR/sweep.log``; commands run in ``cwd`` (the
  repository root, where config paths are relative to). On SIGINT or SIGTERM the
  children get SIGTERM (the training loop saves a checkpoint and exits), then
  SIGKILL after ``term_timeout_s``, and :class:`Interrupted` is raised; running
  the sweep again resumes them. Must be called from the main thread.

  ``pin`` gives each of the ``parallel`` slots its own CPUs (:func:`cpu_slots`):
  concurrent runs whose thread pools each size themselves to every core
  otherwise oversubscribe the machine and all run slower (on 2 cores, two
  unpinned JAX runs each fell to a third of their solo speed).
  """
  import signal  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top
  if parallel < 1:
    raise SweepError(f'--parallel must be >= 1, got {parallel}')
  outcomes: dict[str, str] = {}
  todo = []
  for i, run in enumerate(runs):
    status = run_status(run.workdir, run.eval_prefixes)
    label = f'[{i + 1}/{len(runs)}] {run.name}'
    if status == 'finished':
      outcomes[run.name] = 'skipped'
      echo(f'{label}: finished, skipping\n    {run.printable(main)}')
      continue
    check_workdir(run, run.args(main))
    steps, metrics = [], None
    if status == 'trained':
      metrics = _read_json(os.path.join(run.workdir, 'eval_metrics.json'))
    else:
      steps.append(('resuming' if status == 'partial' else 'starting', run.args(main)))
    steps += [(f'evaluating {p}', run.eval_args(main, p))
              for p in missing_evals(metrics, run.eval_prefixes)]
    todo.append((label, run, steps))

  received: list[int] = []

  def on_signal(signum, frame):  # pylint: disable=unused-argument
    received.append(signum)

  previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
  # name -> (Popen, run, start time, log file, slot, steps left, start of the run's first step)
  running: dict[str, tuple] = {}
  slots = cpu_slots(parallel) if pin else [None] * parallel
  free = list(range(parallel))

  def launch(label: str, run: Run, steps: list, slot: int, began: float | None = None) -> None:
    (verb, args), rest = steps[0], steps[1:]
    where = f' on CPUs {",".join(map(str, slots[slot]))}' if slots[slot] else ''
    echo(f'{label}: {verb}{where}\n    {shlex.join(["python"] + args)}')
    log = open(os.path.join(run.workdir, LOG_FILE), 'ab')
    proc = subprocess.Popen([python] + args, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=dict(env) if env else None,
                            cwd=cwd, start_new_session=True,
                            preexec_fn=_child_setup(slots[slot]))
    now = time.time()
    running[run.name] = (proc, run, now, log, slot, rest, began or now)

  def finish(name: str, returncode: int, interrupted: bool = False) -> None:
    proc, run, start, log, slot, rest, began = running.pop(name)
    log.close()
    wall = time.time() - start
    _record(run, run.args(main), {'start': start, 'wall_s': wall, 'returncode': returncode,
                                  'interrupted': interrupted, 'args': proc.args[1:]})
    if returncode == 0 and rest and not interrupted and not received:
      launch(name, run, rest, slot, began)  # the next evaluation, in the same slot
      return
    free.append(slot)
    free.sort()
    if interrupted:
      return
    if returncode == 0 and run_status(run.workdir, run.eval_prefixes) == 'finished':
      outcomes[name] = 'finished'
      echo(f'{name}: finished in {time.time() - began:.1f} s')  # training and evaluations
    else:
      outcomes[name] = 'failed'
      tail = ''
      log_path = os.path.join(run.workdir, LOG_FILE)
      if os.path.exists(log_path):
        with open(log_path, errors='replace') as f:
          tail = ''.join(f.readlines()[-15:])
      echo(f'{name}: FAILED (exit code {returncode}); log {log_path}:\n{tail}\n'
           f'    repeat it alone with: {run.printable(main)}')

  try:
    queue = list(todo)
    while queue or running:
      if received:
        break
      while queue and len(running) < parallel and not received:
        label, run, steps = queue.pop(0)
        os.makedirs(run.workdir, exist_ok=True)
        _record(run, run.args(main))
        launch(label, run, steps, free.pop(0))
      for name in list(running):
        code = running[name][0].poll()
        if code is not None:
          finish(name, code)
      if running:
        time.sleep(poll_s)
    if received:
      _stop(running, term_timeout_s, echo)
      for name in list(running):
        finish(name, running[name][0].returncode, interrupted=True)
      raise Interrupted(received[0])
  finally:
    if running:  # an unexpected error: do not leave children behind
      _stop(running, term_timeout_s, echo)
      for name in list(running):
        finish(name, running[name][0].returncode, interrupted=True)
    for s, handler in previous.items():
      signal.signal(s, handler)
  return outcomes


def _stop(running: Mapping[str, tuple], timeout_s: float, echo) -> None:
  """SIGTERM to each child's process group, then SIGKILL to the ones still alive."""
  import signal  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top
  for name, (proc, *_rest) in running.items():
    if proc.poll() is None:
      echo(f'{name}: stopping (SIGTERM; it saves a checkpoint, the next sweep resumes it)')
      try:
        os.killpg(proc.pid, signal.SIGTERM)
      except ProcessLookupError:
        pass
  deadline = time.time() + timeout_s
  for name, (proc, *_rest) in running.items():
    try:
      proc.wait(timeout=max(0.0, deadline - time.time()))
    except Exception:  # pylint: disable=broad-except
      echo(f'{name}: still running after {timeout_s:.0f} s; SIGKILL')
      try:
        os.killpg(proc.pid, signal.SIGKILL)
      except ProcessLookupError:
        pass
      proc.wait()
