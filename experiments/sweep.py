r"""Runs an ablation sweep (every setting x seed, N at a time) and collects the results.

    python experiments/sweep.py --sweep=configs/sweeps/onset_preprocessing.py \
        --root=workdirs/onset_preprocessing --parallel=2 --seeds=3

Each run gets ``ROOT/<overrides>`` as its workdir and is an ordinary
``experiments/main.py`` command (printed, so one run can be repeated alone).
Finished runs are skipped and interrupted ones resumed, so the sweep can be
killed (Ctrl-C: the runs save a checkpoint) and started again. At the end
``ROOT/results.csv``, ``results.md`` and ``results.png`` hold mean ± std over
seeds per setting. Other uses:

    python experiments/sweep.py --sweep=configs/sweeps/onset_recurrent.py:tiny \
        --root=/tmp/sweep --set=train.num_steps=10   # quick look, fixed override
    python experiments/sweep.py --sweep=... --root=... --dry_run        # commands only
    python experiments/sweep.py --sweep=... --root=... --collect_only   # tables only
    python experiments/sweep.py --sweep=... --root=... --only='config=onset'  # a subset
    python experiments/sweep.py --sweep=... --root=... --collect_only \
        --previous=experiments/results/NAME.csv   # keep rows whose workdirs are gone
"""

import os
import re
import shlex
import sys

# Sweep files import ``mir_jax`` and ``configs``: make the repository root importable.
ROOT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT_DIR)

from absl import app  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags  # pylint: disable=wrong-import-position

from mir_jax import sweeps  # pylint: disable=wrong-import-position

flags.DEFINE_string('sweep', None, 'Sweep file (path[:arg]) with get_config() and get_sweep().')
flags.DEFINE_string('root', None, 'Folder holding one workdir per run and the results files.')
flags.DEFINE_integer('parallel', 1, 'Runs at a time (each is a subprocess).')
flags.DEFINE_bool('pin', False, 'Give each parallel run its own CPUs (sched_setaffinity), so '
                  'concurrent runs do not oversubscribe the cores.')
flags.DEFINE_integer('seeds', 1, 'Seeds per setting: adds seed=0..N-1 to each.')
flags.DEFINE_string('main', os.path.join('experiments', 'main.py'),
                    'The training script each run calls (tests point it to a fake).')
flags.DEFINE_multi_string('set', [], 'KEY=VALUE override for every run (repeatable); not in '
                          'workdir names.')
flags.DEFINE_bool('dry_run', False, 'Print the runs and their commands; run nothing.')
flags.DEFINE_bool('collect_only', False, 'Only (re)write the results files.')
flags.DEFINE_string('only', '', 'Run only the settings whose name matches this regular expression '
                    '(re.search); the results still list every setting.')
flags.DEFINE_string('previous', '', 'An earlier results.csv (e.g. experiments/results/NAME.csv): '
                    'settings with no finished run under --root take their row from it, marked.')
flags.DEFINE_float('term_timeout', 120.0, 'Seconds a stopped run gets to save before SIGKILL.')
flags.mark_flags_as_required(['sweep', 'root'])
FLAGS = flags.FLAGS


def _extra_overrides(items):
  out = {}
  for item in items:
    key, sep, value = item.partition('=')
    if not sep or not key:
      raise app.UsageError(f'--set={item!r} must be KEY=VALUE')
    out[key.removeprefix('config.')] = sweeps.parse_value(value)
  return out


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  try:
    sweep = sweeps.load_sweep(FLAGS.sweep)
    root = os.path.abspath(os.path.expanduser(FLAGS.root))
    runs = sweeps.plan(sweep, root, FLAGS.seeds, _extra_overrides(FLAGS.set))
  except sweeps.SweepError as e:
    sys.exit(f'FATAL: {e}')
  main_script = FLAGS.main
  if os.path.isabs(main_script) or not os.path.exists(os.path.join(ROOT_DIR, main_script)):
    main_script = os.path.abspath(main_script)
  print(f'{sweep.name}: {len(sweep.settings)} settings x {FLAGS.seeds} seeds = {len(runs)} runs '
        f'under {root}; commands run from {ROOT_DIR}', flush=True)
  if FLAGS.dry_run:
    for run in runs:
      print(f'{run.name} [{sweeps.run_status(run.workdir, run.eval_prefixes)}]\n'
            f'    {run.printable(main_script)}')
      for prefix in run.eval_prefixes:
        print('    ' + shlex.join(['python'] + run.eval_args(main_script, prefix)))
    return 0
  code = 0
  if not FLAGS.collect_only:
    env = dict(os.environ)
    # Runs import configs.* from the repository root whatever the caller's cwd.
    env['PYTHONPATH'] = os.pathsep.join(p for p in (ROOT_DIR, env.get('PYTHONPATH')) if p)
    echo = lambda msg: print(msg, flush=True)  # pylint: disable=unnecessary-lambda-assignment
    try:
      selected = runs
      if FLAGS.only:
        pattern = re.compile(FLAGS.only)
        selected = [r for r in runs if pattern.search(r.setting)]
        print(f'--only={FLAGS.only!r}: {len(selected)} of {len(runs)} runs', flush=True)
      outcomes = sweeps.execute(selected, main=main_script, parallel=FLAGS.parallel, env=env,
                                cwd=ROOT_DIR, pin=FLAGS.pin,
                                echo=echo, term_timeout_s=FLAGS.term_timeout)
    except sweeps.SweepError as e:
      sys.exit(f'FATAL: {e}')
    except sweeps.Interrupted as e:
      print(f'{e}; runs stopped. Run the same command again to resume.', flush=True)
      return 128 + e.signum
    failed = [n for n, o in outcomes.items() if o == 'failed']
    counts = {o: sum(1 for v in outcomes.values() if v == o)
              for o in ('finished', 'skipped', 'failed')}
    print(' '.join(f'{k}={v}' for k, v in counts.items()), flush=True)
    if failed:
      print('failed runs (see their sweep.log):\n  ' + '\n  '.join(failed), flush=True)
      code = 1
  try:
    paths = sweeps.write_results(root, runs, metric=sweep.metric, mode=sweep.mode,
                                 columns=sweep.columns, title=sweep.name,
                                 previous=FLAGS.previous, plot=sweep.plot)
  except sweeps.SweepError as e:
    sys.exit(f'FATAL: {e}')
  print('results: ' + ', '.join(paths.values()), flush=True)
  return code


if __name__ == '__main__':
  app.run(main)
