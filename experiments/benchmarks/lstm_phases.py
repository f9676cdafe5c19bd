"""Where a native LSTM/GRU layer's forward+backward time goes, phase by phase.

    python experiments/benchmarks/lstm_phases.py --cell lstm --shape 64,100,128,512

Splits the layer's forward+backward (as ``experiments/benchmarks/lstm.py`` runs
it: the batch split over one XLA host device per core, under the mesh) into its
three phases, each timed as its own call: the forward loop that saves the
activations (C++), the backward loop (C++), and the parameter and input
gradients (XLA products over all T * B rows, summed over the devices). For each
it prints the median milliseconds, the matrix-product FLOPs and the rate per
core, beside this process's ``jnp.dot`` rate (4096^2) and the whole
forward+backward call. Phases near the GEMM rate leave nothing to gain but a
faster GEMM; their sum against the whole call shows what running them together
costs. Needs the native kernels (a C++ compiler).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec as P
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lstm import gemm_peak_gflops  # pylint: disable=g-import-not-at-top,wrong-import-position

from mir_jax import kernels  # pylint: disable=wrong-import-position
from mir_jax.kernels import gru as gru_kernel, lstm as lstm_kernel  # pylint: disable=wrong-import-position
from mir_jax.nn import cells  # pylint: disable=wrong-import-position
from mir_jax.train import malloc, sharding  # pylint: disable=wrong-import-position


def phase_flops(cell: str, batch: int, steps: int, feat: int, hidden: int) -> dict:
  """Matrix-product FLOPs of each phase (2 per multiply-add), for the whole batch."""
  gates = {'lstm': 4, 'gru': 3}[cell]
  rows = batch * steps
  return {
      'forward loop': 2.0 * rows * (feat + hidden) * gates * hidden,  # x W_ih and h W_hh
      'backward loop': 2.0 * rows * hidden * gates * hidden,  # dgates W_hh^T per step
      'gradients': 2.0 * rows * gates * hidden * (feat + hidden + feat),  # dW_ih, dW_hh, dx
  }


def _median_ms(fn, *args, repeats: int) -> float:
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return 1e3 * statistics.median(times)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--cell', choices=('lstm', 'gru'), default='lstm')
  parser.add_argument('--shape', default='64,100,128,512', help='B,T,I,H')
  parser.add_argument('--host-devices', type=int, default=0,
                      help='XLA host devices (0: one per core, as lstm.py and the trainer)')
  parser.add_argument('--repeats', type=int, default=15)
  parser.add_argument('--rounds', type=int, default=3, help='times to time every phase')
  parser.add_argument('--gemm-size', type=int, default=4096, help='n of the (n, n) jnp.dot rate')
  args = parser.parse_args(argv)
  malloc.use_heap_allocator()
  count = sharding.use_host_devices(args.host_devices, key='--host-devices')
  if not kernels.available():
    raise SystemExit('the native kernels are not available (no C++ compiler, or MIR_JAX_NATIVE=0)')
  batch, steps, feat, hidden = (int(v) for v in args.shape.split(','))
  mesh = sharding.make_mesh(jax.devices()[:count])
  axis = mesh.axis_names[0]
  if batch % mesh.size:
    raise SystemExit(f'--shape batch {batch} must divide by the {mesh.size} devices')
  kernel = lstm_kernel if args.cell == 'lstm' else gru_kernel
  params = cells.get_cell(args.cell).init(jax.random.PRNGKey(0), feat, hidden)
  params = jax.device_put(params, NamedSharding(mesh, P()))
  xs = np.random.default_rng(0).standard_normal((steps, batch, feat)).astype(np.float32)
  xs = jax.device_put(xs, NamedSharding(mesh, P(None, axis)))

  layer = kernel.lstm_layer if args.cell == 'lstm' else kernel.gru_layer
  gate_grads = 1 if args.cell == 'lstm' else 2  # das; or d_rec and d_in

  def carry(batch):
    zeros = jnp.zeros((batch, hidden), jnp.float32)
    return (zeros, zeros) if args.cell == 'lstm' else zeros

  # Every array that passes between phases is (T, B, ...), split on the batch axis; the
  # parameters stay replicated and re-join the saved tuple inside each phase.
  def forward(params, xs):
    (ys, _), saved = kernel.forward_train(params, xs, carry(xs.shape[1]), None)
    return ys, saved[1:]

  def backward(params, rest, ys):
    finals = carry(ys.shape[1])  # zero cotangents of the final carry
    return kernel.backward_loop((params, *rest), (jnp.ones_like(ys), finals))[:gate_grads]

  def grads(params, rest, loop_out):
    dparams, dxs = kernel.gradients((params, *rest), *loop_out)
    return jax.lax.psum(dparams, axis), dxs

  def whole(params, xs):
    loss = lambda p, x: jnp.sum(layer(p, x, carry(x.shape[1]), None)[0])
    dparams, dxs = jax.grad(loss, argnums=(0, 1))(params, xs)
    return jax.lax.psum(dparams, axis), dxs

  split, same = P(None, axis), P()
  phase = lambda fn, ins, outs: jax.jit(jax.shard_map(fn, mesh=mesh, in_specs=ins,
                                                      out_specs=outs, check_vma=False))
  fwd = phase(forward, (same, split), split)
  bwd = phase(backward, (same, split, split), split)
  grd = phase(grads, (same, split, split), (same, split))
  full = phase(whole, (same, split), (same, split))
  ys, rest = fwd(params, xs)
  loop_out = bwd(params, rest, ys)

  peak = gemm_peak_gflops(args.gemm_size)
  flops = phase_flops(args.cell, batch, steps, feat, hidden)
  print(f'{args.cell} (B, T, I, H) = ({batch}, {steps}, {feat}, {hidden}) on {mesh.size} host '
        f'device(s); jnp.dot {args.gemm_size}^2: {peak:.0f} GFLOP/s = {peak / mesh.size:.1f} per core')
  print(f"{'round':5} {'phase':14} {'ms':>8} {'GFLOP':>7} {'GFLOP/s/core':>13} {'% of dot':>9}")
  for r in range(args.rounds):
    ms = {'forward loop': _median_ms(fwd, params, xs, repeats=args.repeats),
          'backward loop': _median_ms(bwd, params, rest, ys, repeats=args.repeats),
          'gradients': _median_ms(grd, params, rest, loop_out, repeats=args.repeats)}
    total = _median_ms(full, params, xs, repeats=args.repeats)
    for name, t in ms.items():
      rate = flops[name] / t / 1e6 / mesh.size
      print(f'{r:5} {name:14} {t:8.1f} {flops[name] / 1e9:7.2f} {rate:13.1f} '
            f'{100 * rate * mesh.size / peak:8.0f}%')
    all_flops = sum(flops.values())
    print(f"{r:5} {'sum of phases':14} {sum(ms.values()):8.1f} {all_flops / 1e9:7.2f} "
          f"{all_flops / sum(ms.values()) / 1e6 / mesh.size:13.1f}")
    print(f"{r:5} {'whole fwd+bwd':14} {total:8.1f} {all_flops / 1e9:7.2f} "
          f"{all_flops / total / 1e6 / mesh.size:13.1f} {100 * all_flops / total / 1e6 / peak:8.0f}%",
          flush=True)


if __name__ == '__main__':
  main()
