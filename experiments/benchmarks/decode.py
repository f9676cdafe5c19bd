"""Seq2seq decoding speed: greedy and beam search under jit, and compile time.

    python experiments/benchmarks/decode.py --quick --json /tmp/decode.json

Builds a :class:`mir_jax.models.seq2seq.Seq2Seq` with random weights at the
sizes of the chord-sequence model (features (B, T, 80); a bidirectional LSTM
encoder with pooling between layers; an LSTM decoder with additive attention),
then times decoding a batch: compile time (``jit(...).lower(...).compile()``),
and sequences per second in the steady state. The end token is set to an id
the model never emits, so every sequence runs the full ``max_len`` steps and
the numbers do not depend on what random weights happen to predict.
A second batch of the same shape is decoded to check that nothing retraces.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from mir_jax.models.seq2seq import Seq2Seq, decode

# (batch, frames, encoder layers, max_len)
SHAPES = [(16, 1000, 3, 64), (64, 500, 2, 32)]


def _random_variables(model, *args, seed=0):
  """Random params of the model's shapes (init speed is not what we time)."""
  rng = np.random.default_rng(seed)
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), *args)
  return jax.tree_util.tree_map(
      lambda s: jnp.asarray(rng.normal(size=s.shape) * 0.3, s.dtype), shapes)


def _median_time(fn, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--quick', action='store_true', help='first shape only, fewer repeats')
  parser.add_argument('--json', help='write the records to this path')
  parser.add_argument('--beam-sizes', default='4', help='comma-separated beam sizes')
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--encoder-hidden', type=int, default=128)
  parser.add_argument('--decoder-hidden', type=int, default=256)
  parser.add_argument('--vocab', type=int, default=38, help='tokens (chord_seq default: 38)')
  args = parser.parse_args(argv)
  shapes = SHAPES[:1] if args.quick else SHAPES
  repeats = 2 if args.quick else args.repeats
  machine = {'platform': platform.platform(), 'cpu_count': os.cpu_count(),
             'jax': jax.__version__, 'backend': jax.default_backend(),
             'devices': [str(d) for d in jax.devices()]}
  print(json.dumps(machine))
  print(f"{'case (B,T,layers,L)':24} {'method':8} {'compile s':>10} {'seq/s':>10} {'tok/s':>10} retraced")
  records = []
  for batch, frames, layers, max_len in shapes:
    model = Seq2Seq(vocab_size=args.vocab, embed_dim=64, encoder_hidden=args.encoder_hidden,
                    encoder_layers=layers, downsample='pool', downsample_factor=2,
                    decoder_hidden=args.decoder_hidden, attention='additive', attention_dim=128,
                    output_hidden=args.decoder_hidden)
    rng = np.random.default_rng(0)
    feats = [jnp.asarray(rng.normal(size=(batch, frames, 80, 1)), jnp.float32) for _ in range(2)]
    lengths = jnp.asarray(rng.integers(frames // 2, frames + 1, batch), jnp.int32)
    tin = jnp.ones((batch, 2), jnp.int32)
    variables = _random_variables(model, feats[0], lengths, tin)
    methods = [('greedy', 1)] + [('beam', int(k)) for k in args.beam_sizes.split(',')]
    for method, k in methods:
      traces = [0]

      def run(v, f, l, method=method, k=k, traces=traces):
        traces[0] += 1  # counts traces, not calls
        return decode(model, v, f, l, max_len=max_len, start_id=1, end_id=-1, method=method,
                      beam_size=k)

      fn = jax.jit(run)
      t0 = time.perf_counter()
      compiled = fn.lower(variables, feats[0], lengths).compile()
      compile_s = time.perf_counter() - t0
      fn(variables, feats[0], lengths).tokens.block_until_ready()  # warm the jit cache
      before = traces[0]
      seconds = _median_time(
          lambda: compiled(variables, feats[1], lengths).tokens.block_until_ready(), repeats)
      fn(variables, feats[1], lengths).tokens.block_until_ready()
      retraced = traces[0] != before
      name = f'{method}{k}' if method == 'beam' else method
      case = f'{batch}x{frames}x{layers}x{max_len}'
      rec = {'case': case, 'batch': batch, 'frames': frames, 'encoder_layers': layers,
             'max_len': max_len, 'method': method, 'beam_size': k, 'compile_s': compile_s,
             'seconds_per_batch': seconds, 'sequences_per_s': batch / seconds,
             'tokens_per_s': batch * max_len / seconds, 'retraced': retraced}
      records.append(rec)
      print(f'{case:24} {name:8} {compile_s:10.2f} {rec["sequences_per_s"]:10.1f} '
            f'{rec["tokens_per_s"]:10.0f} {retraced}', flush=True)
  if args.json:
    with open(args.json, 'w') as f:
      json.dump({'machine': machine, 'records': records}, f, indent=1)
    print(f'wrote {args.json}')


if __name__ == '__main__':
  main()
