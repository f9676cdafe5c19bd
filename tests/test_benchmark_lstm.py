"""The LSTM benchmark's roofline arithmetic and its JSON records (no timing asserted)."""

import importlib.util
import json
import os

import pytest

_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'experiments',
                     'benchmarks', 'lstm.py')
_spec = importlib.util.spec_from_file_location('mir_jax_bench_lstm', _PATH)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_matmul_flops_by_hand():
  # LSTM, I=80, H=128: x @ (80, 512) and h @ (128, 512) per token, 2 FLOPs per multiply-add.
  assert bench.matmul_flops_per_token('lstm', 80, 128, False, 'fwd') == 2 * 80 * 512 + 2 * 128 * 512
  assert bench.matmul_flops_per_token('gru', 80, 128, False, 'fwd') == 2 * 208 * 384
  assert bench.matmul_flops_per_token('lstm', 80, 128, True, 'fwd+bwd') == 3 * 2 * 2 * 208 * 512


def test_records_carry_the_roofline(tmp_path):
  out = tmp_path / 'b.json'
  bench.main(['--shapes', '2,8,4,8', '--impls', 'mir_jax,flax', '--directions', 'uni',
              '--repeats', '1', '--min-time', '0', '--gemm-size', '256', '--json', str(out),
              '--host-devices', '1'])
  data = json.loads(out.read_text())
  peak = data['machine']['gemm_peak_gflops']
  assert peak > 0
  for r in data['records']:
    flops = bench.matmul_flops_per_token('lstm', 4, 8, False, r['mode'])
    assert r['gflops'] == pytest.approx(r['tokens_per_s'] * flops / 1e9)
    assert r['fraction_of_gemm_peak'] == pytest.approx(r['gflops'] / peak)
  flax = {r['mode']: r['tokens_per_s'] for r in data['records'] if r['impl'] == 'flax'}
  for r in data['records']:
    assert r['ceiling_vs_flax'] == pytest.approx(
        peak * 1e9 / bench.matmul_flops_per_token('lstm', 4, 8, False, r['mode']) / flax[r['mode']])


_SPREAD = os.path.join(os.path.dirname(_PATH), 'spread.py')
_spec2 = importlib.util.spec_from_file_location('mir_jax_bench_spread', _SPREAD)
spread = importlib.util.module_from_spec(_spec2)
_spec2.loader.exec_module(spread)


def _run(mir, flax, torch):
  case = {'cell': 'lstm', 'shape': [64, 100, 128, 512], 'direction': 'uni', 'mode': 'fwd+bwd'}
  return {'records': [
      {**case, 'impl': 'mir_jax', 'tokens_per_s': mir, 'ratio_vs_flax': mir / flax,
       'ratio_vs_torch': mir / torch, 'ceiling_vs_flax': 60.0 / flax},
      {**case, 'impl': 'flax', 'tokens_per_s': flax, 'ratio_vs_flax': 1.0,
       'ratio_vs_torch': flax / torch}]}


def test_spread_over_runs_counts_the_runs_that_met_each_floor(tmp_path, capsys):
  paths = []
  for i, (mir, flax, torch) in enumerate([(30.0, 20.0, 30.0), (30.0, 15.0, 40.0),
                                          (33.0, 22.0, 33.0)]):
    paths.append(str(tmp_path / f'run{i}.json'))
    with open(paths[-1], 'w', encoding='utf-8') as f:
      json.dump(_run(mir, flax, torch), f)
  rows = spread.spread([json.load(open(p, encoding='utf-8')) for p in paths])
  mine = [r for r in rows if r['impl'] == 'mir_jax'][0]
  assert mine['ratio_vs_flax'] == pytest.approx([1.5, 2.0, 1.5])
  spread.main(paths)
  line = [l for l in capsys.readouterr().out.splitlines() if ' mir_jax ' in l][0]
  # vs Flax 1.50 / 1.50 / 2.00, all three >= 1.5; vs PyTorch 0.75 / 1.00 / 1.00, two of three >= 0.8
  assert '30 / 30 / 33' in line
  assert '1.50 / 1.50 / 2.00  3/3' in line
  assert '0.75 / 1.00 / 1.00  2/3' in line
  assert '2.73 / 3.00 / 4.00' in line  # ceiling 60 / flax: 60/22, 60/20, 60/15


def test_spread_skips_cases_missing_from_a_run(tmp_path):
  one, two = _run(30.0, 20.0, 30.0), _run(30.0, 20.0, 30.0)
  two['records'] = two['records'][:1]
  rows = spread.spread([one, two])
  assert [r['impl'] for r in rows] == ['mir_jax']


_PHASES = os.path.join(os.path.dirname(_PATH), 'lstm_phases.py')
_spec3 = importlib.util.spec_from_file_location('mir_jax_bench_phases', _PHASES)
phases = importlib.util.module_from_spec(_spec3)
_spec3.loader.exec_module(phases)


@pytest.mark.parametrize('cell', ['lstm', 'gru'])
def test_phase_flops_add_up_to_the_benchmarks_forward_backward_count(cell):
  per_phase = phases.phase_flops(cell, 8, 500, 256, 128)
  assert sum(per_phase.values()) == pytest.approx(
      8 * 500 * bench.matmul_flops_per_token(cell, 256, 128, False, 'fwd+bwd'))
  gates = {'lstm': 4, 'gru': 3}[cell]
  assert per_phase['backward loop'] == 2 * 8 * 500 * 128 * gates * 128  # dgates @ W_hh^T


def test_phases_run_and_print_every_phase(capsys):
  from mir_jax import kernels  # pylint: disable=g-import-not-at-top
  if not kernels.available():
    pytest.skip('native kernels not built here')
  phases.main(['--cell', 'gru', '--shape', '8,100,64,128', '--repeats', '1', '--rounds', '1',
               '--host-devices', '1', '--gemm-size', '128'])
  out = capsys.readouterr().out
  flops = phases.phase_flops('gru', 8, 100, 64, 128)  # 0.12, 0.08 and 0.14 GFLOP
  for name in ('forward loop', 'backward loop', 'gradients'):
    line = [l for l in out.splitlines() if name in l][0]
    assert f'{flops[name] / 1e9:7.2f}' in line
  assert 'whole fwd+bwd' in out
