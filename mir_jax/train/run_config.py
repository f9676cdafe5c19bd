"""A workdir holds one run: later commands must agree with the config it was trained with.

Training writes the resolved config to ``workdir/config.json``. Resuming with
other values (a different model, features, data or optimizer) would silently
continue one run as another, and evaluating or predicting with other features
or another model would score the checkpoint on inputs it never saw; both stop
here with a :class:`ConfigMismatchError` that names every key and both values,
before anything in the workdir is written.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterable

# Keys a resumed training run may change: how long and how often it logs, evaluates and
# saves, where files go, how many threads and devices run it, and evaluation-only settings.
RESUMABLE = (
    'train.num_steps', 'train.log_every', 'train.eval_every', 'train.tensorboard',
    'train.distributed', 'train.host_devices', 'train.heap_allocator',
    'checkpoint.', 'data.root', 'data.cache_dir', 'data.num_threads', 'data.eval_',
    'data.pad_to_multiple', 'data.synth.num_eval', 'data.synth.eval_seed', 'eval.', 'decode.',
    'predict.', 'debug.',
)
# Keys --mode=eval and --mode=predict must share with training: the network, its input
# features and the label space. Decoding options (thresholds, Viterbi, beam) and the
# evaluation data may differ: scoring a checkpoint under other decoding or on other
# data is the point of a separate evaluation.
MODEL_DEFINING = ('model.', 'features.', 'task.name', 'task.vocab', 'task.tag_names',
                  'task.duration_bins')


class ConfigMismatchError(ValueError):
  """The command's config differs from the run in its workdir in keys that define the run."""


def flatten(tree: Any, prefix: str = '') -> dict[str, Any]:
  """``{'a.b': value}`` for every leaf of nested dicts, values as JSON gives them back."""
  if hasattr(tree, 'to_dict'):
    tree = tree.to_dict()
  tree = json.loads(json.dumps(tree))  # tuples -> lists, as in config.json
  out = {}

  def walk(node, path):
    if isinstance(node, dict):
      for key, value in node.items():
        walk(value, f'{path}{key}.')
    else:
      out[path[:-1]] = node
  walk(tree, prefix)
  return out


def _matches(key: str, prefixes: Iterable[str]) -> bool:
  # 'a.b' is the key a.b and everything under it; 'a.' and 'a.b_' are prefixes of names.
  return any(key == p or key.startswith(p + '.') or (p[-1] in '._' and key.startswith(p))
             for p in prefixes)


def differences(saved: Any, current: Any, *, only: Iterable[str] | None = None,
                skip: Iterable[str] = ()) -> list[str]:
  """'key: run X, this command Y' for keys in both configs whose values differ.

  ``only`` limits the comparison to keys under those prefixes; ``skip`` leaves
  keys out. Keys in just one of the two (a config key added or removed since
  the run) are not compared.
  """
  a, b = flatten(saved), flatten(current)
  lines = []
  for key in sorted(a.keys() & b.keys()):
    if only is not None and not _matches(key, only):
      continue
    if _matches(key, skip) or a[key] == b[key]:
      continue
    lines.append(f'{key}: run {a[key]!r}, this command {b[key]!r}')
  return lines


def saved_config(workdir: str) -> dict | None:
  """The run's ``config.json``, or None where the workdir has none yet."""
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    return None
  try:
    with open(path, encoding='utf-8') as f:
      return json.load(f)
  except json.JSONDecodeError as e:
    raise ConfigMismatchError(f'{path} is not valid JSON ({e}): it should hold the config of '
                              f'the run in this workdir') from e


def check(workdir: str, config: Any, mode: str) -> None:
  """Raises :class:`ConfigMismatchError` where ``config`` may not run in ``workdir``.

  ``mode`` 'train': every key but :data:`RESUMABLE` must match the run's
  (a workdir is one run; a changed run belongs in another workdir);
  'eval' / 'predict': the :data:`MODEL_DEFINING` keys must match.
  """
  saved = saved_config(workdir)
  if saved is None:
    return
  if mode == 'train':
    # data.crop_frames 0 is resolved by training (the longest track) and recorded resolved.
    resolved = ('data.crop_frames',) if flatten(config).get('data.crop_frames') == 0 else ()
    lines = differences(saved, config, skip=RESUMABLE + resolved)
    advice = ('resume with the same config (only '
              + ', '.join(p + '*' if p[-1] in '._' else p for p in RESUMABLE)
              + ' may change), or train the changed config in another --workdir')
  elif mode in ('eval', 'predict'):
    lines = differences(saved, config, only=MODEL_DEFINING)
    advice = (f'--mode={mode} must build the model and features the run was trained with: pass '
              'the same --config file and overrides as its training')
  else:
    raise ValueError(f"mode must be 'train', 'eval' or 'predict', got {mode!r}")
  if lines:
    raise ConfigMismatchError(
        f'{os.path.join(workdir, "config.json")} records a run whose config differs from this '
        f'command\'s in {len(lines)} key(s):\n  ' + '\n  '.join(lines) + f'\nNothing was '
        f'written. To go on: {advice}.')
