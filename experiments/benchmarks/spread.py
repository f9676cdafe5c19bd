"""Run-to-run spread of benchmark JSONs: min / median / max per case and implementation.

    python experiments/benchmarks/spread.py experiments/benchmarks/results/lstm_h512_run*.json

One benchmark process reports medians over interleaved rounds, which hides how
much a rate moves between processes (thread placement, the neighbours of a
shared machine). Given the JSONs of several runs of the same command
(``lstm.py --json``), this prints, for every case, each implementation's
tokens/s and ratios vs Flax and vs PyTorch as ``min / median / max`` over the
runs, how many runs met a ratio floor (``--floor-flax``, ``--floor-torch``), and
the roofline's ceiling vs Flax (a layer at the run's GEMM rate) over the runs.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics

_KEY = ('cell', 'shape', 'direction', 'mode')


def spread(runs: list[dict]) -> list[dict]:
  """One row per (case, impl) seen in every run: lists of each metric over the runs."""
  rows = collections.OrderedDict()
  for run in runs:
    for r in run['records']:
      key = tuple(tuple(r[k]) if isinstance(r[k], list) else r[k] for k in _KEY) + (r['impl'],)
      row = rows.setdefault(key, {**{k: r[k] for k in _KEY}, 'impl': r['impl'],
                                  'tokens_per_s': [], 'ratio_vs_flax': [],
                                  'ratio_vs_torch': [], 'ceiling_vs_flax': []})
      for metric in ('tokens_per_s', 'ratio_vs_flax', 'ratio_vs_torch', 'ceiling_vs_flax'):
        if r.get(metric) is not None:
          row[metric].append(r[metric])
  return [row for row in rows.values() if len(row['tokens_per_s']) == len(runs)]


def _fmt(values: list[float], spec: str) -> str:
  if not values:
    return '-'
  return ' / '.join(format(v, spec) for v in
                    (min(values), statistics.median(values), max(values)))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('paths', nargs='+', help='JSONs written by lstm.py --json')
  parser.add_argument('--impl', default='mir_jax', help='whose ratios to show')
  parser.add_argument('--floor-flax', type=float, default=1.5)
  parser.add_argument('--floor-torch', type=float, default=0.8)
  args = parser.parse_args(argv)
  runs = []
  for path in args.paths:
    with open(path, encoding='utf-8') as f:
      runs.append(json.load(f))
  rows = spread(runs)
  if not rows:
    raise SystemExit(f'no case is in all of {args.paths}')
  print(f'{len(runs)} runs; min / median / max over them')
  print(f"{'cell':5} {'case (B,T,I,H)':22} {'dir':4} {'mode':8} {'impl':8} "
        f"{'tokens/s':>28}  {'vs flax':>18} {'met':>4}  {'vs torch':>18} {'met':>4}"
        f"  {'ceiling vs flax':>18}")
  for row in rows:
    line = (f"{row['cell']:5} {str(tuple(row['shape'])):22} {row['direction']:4} "
            f"{row['mode']:8} {row['impl']:8} {_fmt(row['tokens_per_s'], ',.0f'):>28}")
    if row['impl'] == args.impl:
      for metric, floor in (('ratio_vs_flax', args.floor_flax),
                            ('ratio_vs_torch', args.floor_torch)):
        met = sum(v >= floor for v in row[metric])
        line += f"  {_fmt(row[metric], '.2f'):>18} {f'{met}/{len(row[metric])}':>4}"
      line += f"  {_fmt(row['ceiling_vs_flax'], '.2f'):>18}"
    print(line)


if __name__ == '__main__':
  main()
