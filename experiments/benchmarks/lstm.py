"""Recurrent layer speed: mir_jax against Flax and PyTorch in the same process.

    python experiments/benchmarks/lstm.py --quick --json /tmp/lstm.json

Times forward and forward+backward (grads of params and inputs of sum(outputs))
for unidirectional and bidirectional layers on the shapes (batch, time, input,
hidden) below, and prints tokens per second (batch * time / s) with ratios.
"mir_jax" is the layers as the models call them (``impl='auto'``: on the CPU,
float32 LSTMs and GRUs run the native kernels of :mod:`mir_jax.kernels`);
``--impls mir_jax_in_loop`` shows the pure-JAX fused layers beside them. Peers: Flax ``nn.RNN(nn.OptimizedLSTMCell)`` / ``nn.Bidirectional`` (``GRUCell``
for --cells gru) and PyTorch ``nn.LSTM`` / ``nn.GRU`` limited to --torch-threads
threads. PyTorch is optional: without it the script says so and skips it.

Roofline: every case also reports the matrix-product FLOP rate each
implementation reached (2 (I + H) G H FLOPs per token and direction forward,
G = 4 gates for the LSTM and 3 for the GRU; three times that for
forward+backward: the backward pass repeats both products for the input and
the weight gradients) as a fraction of this process's measured fp32 GEMM peak
(``jnp.dot`` of two 4096x4096 matrices), and ``ceiling vs flax``: the largest
speed-up over Flax that a layer running at GEMM peak could show. A ceiling
below a target ratio means no implementation can reach it in fp32 on this
machine. ``--no-roofline`` skips the peak measurement.

Allocator: by default the process runs under the glibc settings the trainer
applies (``config.train.heap_allocator``, :mod:`mir_jax.train.malloc`: one
arena that keeps its memory, so large per-call buffers reuse pages instead of
faulting fresh ones in); every peer shares the process and so the setting.
``--allocator=default`` keeps glibc's defaults. The JSON records each case's
median minor page faults per call.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from mir_jax import kernels
from mir_jax.nn import cells, recurrent
from mir_jax.train import malloc, sharding

SHAPES = [(16, 1000, 80, 128), (8, 500, 256, 256), (64, 100, 128, 512)]


def _faults() -> int:
  return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _interleaved_medians(fns: dict, repeats: int, min_time: float) -> tuple[dict, dict]:
  """Median seconds and minor page faults per call of each function, timed round-robin.

  Interleaving the implementations spreads drift in machine load and allocator
  state over all of them instead of biasing whichever ran in a quiet moment.
  """
  for fn in fns.values():
    fn()  # warm-up (compilation, allocator)
  times = {name: [] for name in fns}
  faults = {name: [] for name in fns}
  start = time.perf_counter()
  rounds = 0
  while rounds < repeats or (time.perf_counter() - start < min_time and rounds < 50):
    for name, fn in fns.items():
      f0, t0 = _faults(), time.perf_counter()
      fn()
      times[name].append(time.perf_counter() - t0)
      faults[name].append(_faults() - f0)
    rounds += 1
  return ({name: statistics.median(t) for name, t in times.items()},
          {name: statistics.median(f) for name, f in faults.items()})


def _cpu_model() -> str:
  try:
    with open('/proc/cpuinfo', encoding='utf-8') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor()


def _block(tree):
  jax.tree_util.tree_map(lambda a: a.block_until_ready(), tree)


def mir_jax_fns(cell, bidir, x, impl='auto', mesh=None):
  """As the trainer runs a model: the batch split over the mesh, calls under it."""
  batch, steps, feat = x.shape
  key = jax.random.PRNGKey(0)
  hidden = HIDDEN[0]
  if bidir and impl == 'vmap':  # diagnostic: the fused layer vmapped over directions
    params = recurrent.bidirectional_init(key, cell, feat, hidden)
    one = lambda p, xd: recurrent.rnn(cell, p, xd)[0]
    layer = lambda p, x: jnp.concatenate(
        jax.vmap(one)(p, jnp.stack([x, x[:, ::-1]])), axis=-1)
  elif bidir:
    params = recurrent.bidirectional_init(key, cell, feat, hidden)
    layer = lambda p, x: recurrent.bidirectional(cell, p, x, impl=impl)[0]
  else:
    params = cells.get_cell(cell).init(key, feat, hidden)
    impl = 'auto' if impl == 'vmap' else impl
    layer = lambda p, x: recurrent.rnn(cell, p, x, impl=impl)[0]
  fwd = jax.jit(layer)
  bwd = jax.jit(jax.grad(lambda p, x: jnp.sum(layer(p, x)), argnums=(0, 1)))
  if mesh is None or mesh.size == 1 or batch % mesh.size:
    return (lambda: _block(fwd(params, x))), (lambda: _block(bwd(params, x)))
  x = jax.device_put(x, sharding.batch_sharding(mesh))
  params = jax.device_put(params, sharding.replicated(mesh))

  def under_mesh(fn):
    def call():
      with jax.set_mesh(mesh):
        _block(fn(params, x))
    return call
  return under_mesh(fwd), under_mesh(bwd)


def flax_fns(cell, bidir, x):
  import flax.linen as nn
  hidden = HIDDEN[0]
  make = (lambda: nn.OptimizedLSTMCell(hidden)) if cell == 'lstm' else (lambda: nn.GRUCell(hidden))
  model = nn.Bidirectional(nn.RNN(make()), nn.RNN(make())) if bidir else nn.RNN(make())
  variables = model.init(jax.random.PRNGKey(0), x)
  fwd = jax.jit(model.apply)
  bwd = jax.jit(jax.grad(lambda v, x: jnp.sum(model.apply(v, x)), argnums=(0, 1)))
  return (lambda: _block(fwd(variables, x))), (lambda: _block(bwd(variables, x)))


def torch_fns(cell, bidir, x_np, threads):
  import torch
  torch.set_num_threads(threads)
  batch, steps, feat = x_np.shape
  module = {'lstm': torch.nn.LSTM, 'gru': torch.nn.GRU}[cell](
      feat, HIDDEN[0], batch_first=True, bidirectional=bidir)
  x = torch.tensor(x_np)
  xg = torch.tensor(x_np, requires_grad=True)

  def fwd():
    with torch.no_grad():
      module(x)

  def bwd():
    module.zero_grad(set_to_none=True)
    xg.grad = None
    out, _ = module(xg)
    out.sum().backward()
  return fwd, bwd


def matmul_flops_per_token(cell: str, feat: int, hidden: int, bidir: bool, mode: str) -> float:
  """Matrix-product FLOPs per token of one layer (see the module docstring)."""
  gates = {'lstm': 4, 'gru': 3}[cell]
  fwd = 2.0 * (feat + hidden) * gates * hidden * (2 if bidir else 1)
  return fwd if mode == 'fwd' else 3.0 * fwd


def gemm_peak_gflops(n: int = 4096, repeats: int = 5) -> float:
  """Best fp32 GEMM rate (GFLOP/s) of ``jnp.dot`` on (n, n) @ (n, n) in this process."""
  a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
  dot = jax.jit(jnp.dot)
  dot(a, a).block_until_ready()
  best = float('inf')
  for _ in range(repeats):
    t0 = time.perf_counter()
    dot(a, a).block_until_ready()
    best = min(best, time.perf_counter() - t0)
  return 2.0 * n ** 3 / best / 1e9


HIDDEN = [0]  # set per case; module-level so the builders share one signature


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--quick', action='store_true', help='first shape only')
  parser.add_argument('--shapes', default='',
                      help='semicolon-separated B,T,I,H shapes instead of the standard ones')
  parser.add_argument('--json', help='write the records to this path')
  parser.add_argument('--cells', default='lstm', help='comma-separated: lstm,gru')
  parser.add_argument('--directions', default='uni,bi')
  parser.add_argument('--modes', default='fwd,fwd+bwd')
  parser.add_argument('--impls', default='mir_jax,flax,torch',
                      help='any of mir_jax,flax,torch; for diagnosis also mir_jax_native '
                      '(the C++ kernels), mir_jax_scan (autodiff of the generic scan), '
                      'mir_jax_in_loop, mir_jax_hoisted (the pure-JAX fused layers, and where '
                      'they project their inputs), mir_jax_vmap (bidirectional as one '
                      'vmapped loop)')
  parser.add_argument('--torch-threads', type=int, default=2)
  parser.add_argument('--allocator', choices=('heap', 'default'), default='heap',
                      help="heap: the trainer's glibc settings (mir_jax.train.malloc), for "
                      "every peer in the process; default: glibc's own")
  parser.add_argument('--host-devices', type=int, default=0,
                      help='XLA host devices to split the CPU into (0: one per core, as '
                      'config train.host_devices=0); mir_jax runs its batch split over them as '
                      'the trainer does, Flax on one device (its fastest: split by XLA it '
                      'was 2x slower); 1 = everything on one device')
  parser.add_argument('--no-roofline', action='store_true',
                      help='skip the GEMM peak measurement and the FLOP-rate columns')
  parser.add_argument('--gemm-size', type=int, default=4096, help='n of the (n, n) GEMM peak')
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--min-time', type=float, default=6.0,
                      help='keep timing a case (all implementations, round-robin) for at '
                      'least this many seconds')
  args = parser.parse_args(argv)
  heap = args.allocator == 'heap' and malloc.use_heap_allocator()  # before any library allocates
  count = sharding.use_host_devices(args.host_devices, key='--host-devices')
  mesh = sharding.make_mesh(jax.devices()[:1 if args.host_devices == 1 else count])

  impls = args.impls.split(',')
  if 'torch' in impls:
    try:
      import torch  # noqa: F401
    except ImportError:
      print('PyTorch is not installed: skipping the torch peer '
            '(pip install -e ".[bench]")', file=sys.stderr)
      impls.remove('torch')
  shapes = SHAPES[:1] if args.quick else SHAPES
  if args.shapes:
    shapes = [tuple(int(v) for v in shape.split(',')) for shape in args.shapes.split(';')]
  machine = {
      'platform': platform.platform(), 'processor': _cpu_model(),
      'native_kernels': kernels.available(),
      'cpu_count': os.cpu_count(), 'jax': jax.__version__,
      'backend': jax.default_backend(), 'devices': [str(d) for d in jax.devices()],
      'host_devices': mesh.size,
      'allocator': ('heap: ' + json.dumps(malloc.SETTINGS)) if heap else 'glibc default',
      'allocator_env': {k: v for k, v in os.environ.items() if k.startswith('MALLOC_')
                        or k == 'LD_PRELOAD'},
  }
  if 'torch' in impls:
    import torch
    machine['torch'] = torch.__version__
  if not args.no_roofline:
    machine['gemm_peak_gflops'] = gemm_peak_gflops(args.gemm_size)
  print(json.dumps(machine))
  peak = machine.get('gemm_peak_gflops')

  records = []
  header = (f"{'cell':5} {'case (B,T,I,H)':22} {'dir':4} {'mode':8} "
            + ' '.join(f'{i + " tok/s":>14}' for i in impls)
            + ('  vs flax' if 'flax' in impls else '') + ('  vs torch' if 'torch' in impls else '')
            + ('  %peak ' + '/'.join(impls) if peak else '')
            + ('  ceiling vs flax' if peak and 'flax' in impls else ''))
  print(header)
  for cell in args.cells.split(','):
    for shape in shapes:
      batch, steps, feat, hidden = shape
      HIDDEN[0] = hidden
      x_np = np.random.default_rng(0).standard_normal((batch, steps, feat)).astype(np.float32)
      x = jnp.asarray(x_np)
      for direction in args.directions.split(','):
        bidir = direction == 'bi'
        fns = {}
        for impl in impls:
          if impl == 'mir_jax':
            fns[impl] = mir_jax_fns(cell, bidir, x, mesh=mesh)
          elif impl.startswith('mir_jax_'):  # diagnostics: mir_jax_{scan,in_loop,hoisted,vmap}
            fns[impl] = mir_jax_fns(cell, bidir, x, impl=impl[len('mir_jax_'):], mesh=mesh)
          elif impl == 'flax':
            fns[impl] = flax_fns(cell, bidir, x)
          elif impl == 'torch':
            fns[impl] = torch_fns(cell, bidir, x_np, args.torch_threads)
        for mode in args.modes.split(','):
          seconds, faults = _interleaved_medians(
              {impl: (fwd if mode == 'fwd' else bwd) for impl, (fwd, bwd) in fns.items()},
              args.repeats, args.min_time)
          rate = {impl: batch * steps / s for impl, s in seconds.items()}
          case = f'{cell}:{batch}x{steps}x{feat}x{hidden}'
          flops = matmul_flops_per_token(cell, feat, hidden, bidir, mode)
          for impl, tps in rate.items():
            records.append({
                'gflops': tps * flops / 1e9,
                'fraction_of_gemm_peak': tps * flops / 1e9 / peak if peak else None,
                'ceiling_vs_flax': peak * 1e9 / flops / rate['flax'] if peak and 'flax' in rate
                                   else None,
                'case': case, 'cell': cell, 'shape': list(shape), 'direction': direction,
                'mode': mode, 'impl': impl, 'tokens_per_s': tps,
                'minor_faults_per_call': faults[impl],
                'ratio_vs_torch': tps / rate['torch'] if 'torch' in rate else None,
                'ratio_vs_flax': tps / rate['flax'] if 'flax' in rate else None,
            })
          line = (f'{cell:5} {str(shape):22} {direction:4} {mode:8} '
                  + ' '.join(f'{rate[i]:14,.0f}' for i in impls))
          if 'mir_jax' in rate and 'flax' in rate:
            line += f'  {rate["mir_jax"] / rate["flax"]:7.2f}x'
          if 'mir_jax' in rate and 'torch' in rate:
            line += f'  {rate["mir_jax"] / rate["torch"]:8.2f}x'
          if peak:
            line += '  ' + '/'.join(f'{100 * rate[i] * flops / 1e9 / peak:.0f}' for i in impls)
            if 'flax' in rate:
              line += f'  {peak * 1e9 / flops / rate["flax"]:6.2f}x'
          print(line, flush=True)
  if args.json:
    with open(args.json, 'w') as f:
      json.dump({'machine': machine, 'records': records}, f, indent=1)
    print(f'wrote {args.json}')


if __name__ == '__main__':
  main()
