r"""Trains the symbolic reversal task once per attention kind and prints held-out accuracy.

    python experiments/symbolic.py --config=configs/symbolic/reverse.py [--json=PATH]

Everything (sequence lengths, model widths, steps, attention kinds) comes from
the config file; ``--config.compare_attention='("dot",)'`` etc. override it.
"""

from __future__ import annotations

import json
import os
import sys
import time

from absl import app
from absl import flags
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top,wrong-import-position
from mir_jax.atomic import atomic_open

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Symbolic task config file.',
                                          lock_config=True)
flags.DEFINE_string('json', '', 'Also write the results as JSON to this path.')
flags.mark_flags_as_required(['config'])
FLAGS = flags.FLAGS


def run(config) -> dict:
  """``{attention: {'greedy_sequence_accuracy', 'beam<k>_sequence_accuracy', ...}}``."""
  import numpy as np
  from mir_jax.tasks import symbolic
  held_out = symbolic.make_batch(np.random.default_rng(config.eval.seed), config.eval.num_examples,
                                 config.min_len, config.max_len, config.num_symbols, config.task)
  results = {}
  for kind in config.compare_attention:
    model = symbolic.tiny_model(config.num_symbols, attention=kind, **config.model.to_dict())
    start = time.perf_counter()
    variables, history = symbolic.train(
        model, steps=config.train.steps, batch_size=config.train.batch_size,
        min_len=config.min_len, max_len=config.max_len, num_symbols=config.num_symbols,
        task=config.task, learning_rate=config.train.learning_rate,
        label_smoothing=config.train.label_smoothing, seed=config.seed)
    train_s = time.perf_counter() - start
    greedy = symbolic.evaluate(model, variables, held_out, method='greedy')
    k = int(config.eval.beam_size)
    beam = symbolic.evaluate(model, variables, held_out, method='beam', beam_size=k)
    results[kind] = {'greedy_sequence_accuracy': greedy['sequence_accuracy'],
                     f'beam{k}_sequence_accuracy': beam['sequence_accuracy'],
                     'final_loss': history[-1]['loss'], 'train_s': train_s}
    print(f'{kind:>9}: greedy {greedy["sequence_accuracy"]:.3f}, beam {k} '
          f'{beam["sequence_accuracy"]:.3f} sequence accuracy on {config.eval.num_examples} '
          f'held-out {config.task} sequences of {config.min_len}-{config.max_len} symbols '
          f'({config.train.steps} steps, {train_s:.0f} s)', flush=True)
  return results


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  results = run(_CONFIG.value)
  if FLAGS.json:
    with atomic_open(FLAGS.json, 'w') as f:
      json.dump({'config': _CONFIG.value.to_dict(), 'results': results}, f, indent=2)
  return 0


if __name__ == '__main__':
  app.run(main)
