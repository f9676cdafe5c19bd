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
