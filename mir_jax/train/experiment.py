"""Wires config, data, task and model into the generic loop: train, eval, predict.

This is the one place in ``mir_jax/train`` that knows about audio features,
dataset folders and tasks; :mod:`mir_jax.train.loop` stays generic.

Workdir layout: ``config.json`` (resolved config), ``checkpoints/<step>/``,
``metrics.jsonl``, ``tensorboard/``, ``eval_metrics.json``, ``standardizer.json``
(feature statistics of the training set, needed by predict), ``plots/``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from typing import Any, Optional, Sequence

import jax
import numpy as np

from mir_jax import models
from mir_jax.atomic import atomic_open
from mir_jax import tasks as tasks_lib
from mir_jax.train import checkpoint as checkpoint_lib
from mir_jax.train import loop
from mir_jax.train import malloc
from mir_jax.train import run_config
from mir_jax.train import sharding
from mir_jax.train import writers

DEFAULT_DATA_ROOT = os.path.join('~', '.cache', 'mir_jax', 'data')


# ----------------------------------------------------------------- config bits

def feature_config(config):
  """``FeatureConfig`` from ``config.features`` (unknown keys are rejected by A's code)."""
  from mir_jax.audio.features import FeatureConfig  # pylint: disable=g-import-not-at-top
  return FeatureConfig.from_dict(config.features.to_dict())


def data_root(config) -> str:
  return os.path.expanduser(config.data.root or DEFAULT_DATA_ROOT)


def cache_dir(config) -> Optional[str]:
  value = config.data.cache_dir
  if value == 'none':
    return None
  return os.path.expanduser(value) if value else os.path.join(data_root(config), 'features')


def build_task(config):
  return tasks_lib.build_task(config.task)


def build_model(config, task):
  return models.build_model(config.model, num_outputs=task.num_outputs,
                            compute_dtype=config.train.compute_dtype)


# ----------------------------------------------------------------------- data

def synth_dir(config, split: str) -> str:
  """Folder of the synthetic ``split`` ('train' or 'eval'), named by its settings."""
  s = config.data.synth
  num = s.num_train if split == 'train' else s.num_eval
  seed = s.train_seed if split == 'train' else s.eval_seed
  low, high = _synth_durations(config, split)
  lengths = f'{low:g}' if high is None else f'{low:g}-{high:g}'
  name = f'synth_{s.renderer}_s{seed}_n{num}_d{lengths}_sr{s.sample_rate}'
  return os.path.join(data_root(config), name)


def _synth_durations(config, split: str) -> tuple[float, float | None]:
  """(duration, max_duration or None) of the synthetic ``split``."""
  s = config.data.synth
  given = tuple(s.get('train_durations', ()) or ())
  if split != 'train' or not given:
    return float(s.duration), None
  if len(given) != 2 or not 0 < float(given[0]) <= float(given[1]):
    raise ValueError(f'config.data.synth.train_durations must be () or (shortest, longest) '
                     f'seconds with 0 < shortest <= longest, got {given}')
  return float(given[0]), float(given[1])


def dataset_dir(config, split: str) -> str:
  """The dataset folder of ``split``, rendering the synthetic one if needed."""
  if split not in ('train', 'eval'):
    raise ValueError(f"config.eval.split must be 'train' or 'eval', got {split!r}")
  given = config.data.train_dir if split == 'train' else config.data.eval_dir
  if given:
    return os.path.expanduser(given)
  s = config.data.synth
  if s.train_seed == s.eval_seed:
    raise ValueError('config.data.synth.train_seed and eval_seed must differ (disjoint sets)')
  from mir_jax.data.synth import write_dataset  # pylint: disable=g-import-not-at-top
  out = synth_dir(config, split)
  # Only one host renders; the others wait and then read the same folder.
  if jax.process_index() == 0:
    low, high = _synth_durations(config, split)
    write_dataset(out, s.num_train if split == 'train' else s.num_eval,
                  s.train_seed if split == 'train' else s.eval_seed, low,
                  sample_rate=int(s.sample_rate), renderer=s.renderer, max_duration=high)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(f'render {out}')
  return out


def load_tracks(config, split: str, task) -> list:
  """Tracks of ``split`` that have the task's annotation (error if none do)."""
  from mir_jax.data.datasets import load_dataset_folder  # pylint: disable=g-import-not-at-top
  root = dataset_dir(config, split)
  tracks, _ = load_dataset_folder(root)
  usable = [t for t in tracks if task.has_labels(t)]
  if not usable:
    raise ValueError(f'{root}: no track has {task.annotation!r} annotations for task '
                     f'{task.name!r}')
  return usable


def _features_fn(config, standardizer=None):
  from mir_jax.audio.cache import cached_features  # pylint: disable=g-import-not-at-top
  from mir_jax.audio.features import compute_features  # pylint: disable=g-import-not-at-top
  from mir_jax.audio.io import load_audio  # pylint: disable=g-import-not-at-top
  fcfg = feature_config(config)
  cdir = cache_dir(config)

  def features(track):
    if cdir is not None:
      x = cached_features(track.audio_path, fcfg, cdir)
    else:
      x = compute_features(load_audio(track.audio_path, fcfg.sample_rate), fcfg)
    return standardizer.apply(x) if standardizer is not None else x

  return features


def fit_standardizer(config, workdir: str, train_tracks):
  """Per-band statistics of the training features, saved to / read from the workdir."""
  from mir_jax.audio.cache import Standardizer  # pylint: disable=g-import-not-at-top
  path = os.path.join(workdir, 'standardizer.json')
  if os.path.exists(path):
    with open(path) as f:
      return Standardizer.from_dict(json.load(f))
  raw = _features_fn(config)
  std = Standardizer().fit(raw(t) for t in train_tracks)
  if jax.process_index() == 0:
    writers.write_json_atomic(path, std.to_dict())
  return std


def load_standardizer(workdir: str):
  from mir_jax.audio.cache import Standardizer  # pylint: disable=g-import-not-at-top
  path = os.path.join(workdir, 'standardizer.json')
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} is missing: train in this --workdir first')
  with open(path) as f:
    return Standardizer.from_dict(json.load(f))


def example_batch(config, batch_size: int = 1, task=None) -> dict:
  """Zeros shaped like a training batch, to initialise params.

  Sequence tasks (``task.output_kind == 'sequence'``) add their token targets
  (``targets_in`` ...), which a teacher-forced seq2seq model reads.
  """
  fcfg = feature_config(config)
  # crop_frames 0 (sequence tasks: whole tracks) is resolved at training; params
  # do not depend on the number of frames.
  frames = int(config.data.crop_frames) or int(config.data.pad_to_multiple)
  batch = {'features': np.zeros((batch_size, frames, fcfg.num_bins, fcfg.num_channels), np.float32),
           'mask': np.ones((batch_size, frames), bool),
           'lengths': np.full((batch_size,), frames, np.int32)}
  if task is not None and task.output_kind == 'sequence':
    batch.update({k: np.stack([v] * batch_size) for k, v in task.encode_targets([]).items()})
  return batch


def resolve_whole_track_crop(config, tracks, features_fn) -> int:
  """``data.crop_frames`` 0 -> the longest track's frames, rounded up to ``pad_to_multiple``.

  Sequence tasks train on whole tracks (their targets describe the whole
  track); the resolved value is written back into ``config`` (so config.json
  and checkpoints record it).
  """
  crop = int(config.data.crop_frames)
  if crop > 0:
    return crop
  longest = max(int(features_fn(t).shape[0]) for t in tracks)
  multiple = max(int(config.data.pad_to_multiple), 1)
  crop = -(-longest // multiple) * multiple
  config.data.crop_frames = crop
  return crop


def _whole_clip_features_fn(features_fn, crop_frames: int):
  """``features_fn`` that refuses tracks longer than ``crop_frames``.

  A sequence task's targets describe the whole track, so a training crop must
  hold the whole track: ``data.crop_frames`` >= the longest track's frames
  (shorter tracks are zero-padded and masked).
  """

  def features(track):
    x = features_fn(track)
    if x.shape[0] > crop_frames:
      raise ValueError(
          f'track {track.track_id} has {x.shape[0]} frames but config.data.crop_frames='
          f'{crop_frames}: sequence targets describe whole tracks, so raise '
          f'data.crop_frames to at least the longest track\'s frames')
    return x

  return features


def _local_batch_size(global_size: int, key: str) -> int:
  if global_size % jax.process_count():
    raise ValueError(f'config.{key}={global_size} must be divisible by the number of hosts '
                     f'({jax.process_count()})')
  local = global_size // jax.process_count()
  if local % jax.local_device_count():
    raise ValueError(f'config.{key}={global_size} must be a multiple of the number of devices '
                     f'({jax.device_count()})')
  return local


# ------------------------------------------------------------------ evaluation

def predict_tracks(config, task, params, trainer, tracks, features_fn, *,
                   chunk_frames: int = 0, chunk_overlap: int = 0, batch_size: int) -> tuple[list, float]:
  """(per-track float32 logits, mean loss) for ``tracks`` in order.

  Frame tasks get (num_frames, K) logits (chunks stitched back together);
  clip tasks get (num_chunks, K), one row per chunk, pooled by their decode.
  """
  from mir_jax.data.pipeline import eval_batches, stitch_chunks  # pylint: disable=g-import-not-at-top
  fcfg = feature_config(config)
  local_bs = _local_batch_size(batch_size, 'data.eval_batch_size')
  batches = eval_batches(
      tracks, fcfg, targets_fn=task.targets_fn, batch_size=local_bs,
      chunk_frames=chunk_frames or None, chunk_overlap=chunk_overlap if chunk_frames else None,
      features_fn=features_fn, pad_to_multiple=int(config.data.pad_to_multiple), pad_batch=True)
  pieces: dict[str, list] = {}
  losses, weights = [], []
  for batch in batches:
    logits, metrics = trainer.eval_step(params, trainer.put_batch(batch))
    # Every host feeds the same eval batches, so the first local rows are ours.
    logits = np.asarray(jax.device_get(logits))[:local_bs]
    frames = float(np.sum(batch['mask']))
    if frames > 0:
      losses.append(float(metrics['loss']) * frames)
      weights.append(frames)
    for row, track_id in enumerate(batch['track_ids']):
      if not track_id:
        continue
      n = int(batch['lengths'][row])
      if task.output_kind == 'clip':  # (K,) per chunk; the task's decode pools chunks
        pieces.setdefault(track_id, []).append(logits[row])
      elif chunk_frames:
        pieces.setdefault(track_id, []).append(
            (int(batch['chunk_starts'][row]), int(batch['num_frames'][row]), logits[row]))
      else:
        pieces[track_id] = logits[row, :n]
  outputs = []
  for track in tracks:
    got = pieces[track.track_id]
    if task.output_kind == 'clip':
      outputs.append(np.stack(got))
    elif chunk_frames:
      outputs.append(stitch_chunks([g[2] for g in got], [g[0] for g in got], got[0][1],
                                   chunk_overlap))
    else:
      outputs.append(got)
  mean_loss = float(np.sum(losses) / max(np.sum(weights), 1.0))
  return outputs, mean_loss


# ------------------------------------------------------- sequence (seq2seq) tasks

def decode_options(config, task) -> dict:
  """Keyword arguments of :func:`mir_jax.models.seq2seq.decode` from ``config.decode``.

  ``decode.method`` 'greedy' or 'beam', ``decode.beam_size``,
  ``decode.length_penalty``, ``decode.max_len`` (0: the task's
  ``max_tokens + 1``, room for the end token). Missing keys take these defaults.
  """
  d = config.get('decode') or {}
  method = str(d.get('method', 'greedy'))
  if method not in ('greedy', 'beam'):
    raise ValueError(f"config.decode.method must be 'greedy' or 'beam', got {method!r}")
  beam_size = int(d.get('beam_size', 4)) if method == 'beam' else 1
  if beam_size < 1:
    raise ValueError(f'config.decode.beam_size must be >= 1, got {beam_size}')
  max_len = int(d.get('max_len', 0)) or int(task.max_tokens) + 1
  return {'max_len': max_len, 'start_id': int(task.start_id), 'end_id': int(task.end_id),
          'pad_id': int(task.pad_id), 'beam_size': beam_size,
          'length_penalty': float(d.get('length_penalty', 0.0)), 'method': method}


def make_sequence_decoder(config, task, trainer):
  """``jit(seq2seq.decode)`` built once; jax caches one compilation per batch shape
  (``data.pad_to_multiple`` bounds the number of shapes). Outputs are replicated."""
  import functools  # pylint: disable=g-import-not-at-top
  from mir_jax.models import seq2seq  # pylint: disable=g-import-not-at-top
  fn = functools.partial(seq2seq.decode, trainer.model, **decode_options(config, task))
  return trainer.under_mesh(jax.jit(fn, out_shardings=trainer.replicated))


def _frames_per_state(model) -> int:
  """Feature frames per encoder state of a Seq2Seq model (its total downsampling)."""
  if getattr(model, 'downsample', 'none') == 'none' or int(getattr(model, 'downsample_factor', 1)) <= 1:
    return 1
  return int(model.downsample_factor) ** max(int(model.encoder_layers) - 1, 0)


def _no_targets(track, num_frames, frame_rate):  # pylint: disable=unused-argument
  return {}, {}


@dataclasses.dataclass
class SequenceOutputs:
  """Decoded outputs of one track: token ids up to and including ``</s>``,
  attention (L, valid encoder states) and, for the first few tracks, the features."""
  tokens: np.ndarray
  attention: Optional[np.ndarray]
  features: Optional[np.ndarray] = None


def decode_tracks(config, task, params, trainer, decode_fn, tracks, features_fn, *,
                  batch_size: int, with_targets: bool = True,
                  keep_features: int = 0) -> tuple[list, float]:
  """(per-track :class:`SequenceOutputs`, mean teacher-forced token loss) for ``tracks``.

  Whole tracks are decoded (a sequence describes a whole clip; no chunking).
  ``with_targets=False`` (predict) needs no annotations and gives loss 0.
  """
  from mir_jax.data.pipeline import eval_batches  # pylint: disable=g-import-not-at-top
  fcfg = feature_config(config)
  local_bs = _local_batch_size(batch_size, 'data.eval_batch_size')
  batches = eval_batches(
      tracks, fcfg, targets_fn=task.targets_fn if with_targets else _no_targets,
      batch_size=local_bs, features_fn=features_fn,
      pad_to_multiple=int(config.data.pad_to_multiple), pad_batch=True)
  factor = _frames_per_state(trainer.model)
  variables = {'params': params}
  out: dict[str, SequenceOutputs] = {}
  losses, weights = [], []
  for batch in batches:
    device_batch = trainer.put_batch(batch)
    if with_targets:
      _, metrics = trainer.eval_step(params, device_batch)
      count = float(np.sum(batch['target_mask']))
      if count > 0:
        losses.append(float(metrics['loss']) * count)
        weights.append(count)
    result = decode_fn(variables, device_batch['features'], device_batch['lengths'])
    tokens = np.asarray(jax.device_get(result.tokens))[:local_bs]
    lengths = np.asarray(jax.device_get(result.lengths))[:local_bs]
    att = (np.asarray(jax.device_get(result.attention))[:local_bs]
           if result.attention is not None else None)
    for row, track_id in enumerate(batch['track_ids']):
      if not track_id:
        continue
      n_tok = int(lengths[row])
      n_frames = int(batch['lengths'][row])
      states = -(-n_frames // factor)
      keep = len(out) < keep_features
      out[track_id] = SequenceOutputs(
          tokens=tokens[row, :n_tok],
          attention=att[row, :n_tok, :states] if att is not None else None,
          features=np.asarray(batch['features'][row, :n_frames]) if keep else None)
  mean_loss = float(np.sum(losses) / max(np.sum(weights), 1.0))
  return [out[t.track_id] for t in tracks], mean_loss


def write_attention_maps(config, task, trainer, tracks, outputs, plots_dir: str) -> list[str]:
  """``plots_dir/attention_<track>.png`` for the outputs that kept their features."""
  from mir_jax.tasks.chord_seq import write_attention_map  # pylint: disable=g-import-not-at-top
  fcfg = feature_config(config)
  written = []
  for track, o in zip(tracks, outputs):
    if o.features is None or o.attention is None or not len(o.tokens):
      continue
    names = [task.vocab.tokens[int(t)] for t in o.tokens]
    written.append(write_attention_map(
        os.path.join(plots_dir, f'attention_{track.track_id}.png'), o.features, o.attention,
        names, fcfg.frame_rate, _frames_per_state(trainer.model)))
  return written


def compare_beam_sizes(config) -> tuple[int, ...]:
  """``decode.compare_beam_sizes``: beam sizes evaluated besides ``decode.method``."""
  sizes = tuple(int(k) for k in ((config.get('decode') or {}).get('compare_beam_sizes') or ()))
  if any(k < 1 for k in sizes):
    raise ValueError(f'config.decode.compare_beam_sizes must hold sizes >= 1, got {sizes}')
  return sizes


def _make_sequence_evaluate_fn(config, task, trainer, tracks, features_fn, workdir):
  decode_fn = make_sequence_decoder(config, task, trainer)
  # Greedy and beam scores of the same parameters: the fair comparison, and one
  # training run instead of one per decoder in a sweep.
  extra = {}
  for k in compare_beam_sizes(config):
    c = copy.deepcopy(config)
    c.decode.method, c.decode.beam_size = 'beam', k
    extra[f'beam{k}_'] = make_sequence_decoder(c, task, trainer)
  num_maps = int(config.eval.num_figures) if workdir else 0
  batch_size = int(config.data.eval_batch_size)

  def evaluate(params) -> dict:
    outputs, loss = decode_tracks(config, task, params, trainer, decode_fn, tracks, features_fn,
                                  batch_size=batch_size, keep_features=num_maps)
    predictions = [task.decode(o.tokens) for o in outputs]
    if num_maps and jax.process_index() == 0:
      write_attention_maps(config, task, trainer, tracks, outputs, os.path.join(workdir, 'plots'))
    metrics = {'loss': loss, **task.metrics(predictions, tracks)}
    for prefix, fn in extra.items():
      more, _ = decode_tracks(config, task, params, trainer, fn, tracks, features_fn,
                              batch_size=batch_size, with_targets=False)  # loss is above
      scores = task.metrics([task.decode(o.tokens) for o in more], tracks)
      metrics.update({prefix + name: value for name, value in scores.items()})
    return metrics

  return evaluate


# ------------------------------------------------------------------ evaluate fn

def write_prediction_figures(task, tracks, predictions, features_fn, frame_rate: float,
                             plots_dir: str) -> list[str]:
  """``plots_dir/eval_<track>.png`` (spectrogram, reference and prediction) per track."""
  from mir_jax.tasks.figures import write_prediction_figure  # pylint: disable=g-import-not-at-top
  written = []
  for track, prediction in zip(tracks, predictions):
    name = track.track_id.replace(os.sep, '_')
    written.append(write_prediction_figure(
        os.path.join(plots_dir, f'eval_{name}.png'), task, features_fn(track), frame_rate,
        prediction, track))
  return written


def make_evaluate_fn(config, task, trainer, tracks, features_fn, workdir: Optional[str] = None):
  """``params -> {'loss': ..., **task.metrics}`` over ``tracks``.

  Sequence tasks decode token ids (``config.decode``) and, given ``workdir``,
  write attention maps of the first ``eval.num_figures`` tracks to
  ``workdir/plots``; the other tasks write ``plots/eval_<track>.png`` (the
  spectrogram with reference and predicted labels) of as many tracks.
  """
  if task.output_kind == 'sequence':
    return _make_sequence_evaluate_fn(config, task, trainer, tracks, features_fn, workdir)
  fcfg = feature_config(config)
  chunk = int(config.data.eval_chunk_frames)
  num_figures = int(config.eval.num_figures) if workdir else 0

  def evaluate(params) -> dict:
    logits, loss = predict_tracks(config, task, params, trainer, tracks, features_fn,
                                  chunk_frames=chunk, chunk_overlap=chunk // 4,
                                  batch_size=int(config.data.eval_batch_size))
    predictions = [task.decode(l, fcfg.frame_rate) for l in logits]
    if num_figures and jax.process_index() == 0:
      write_prediction_figures(task, tracks[:num_figures], predictions, features_fn,
                               fcfg.frame_rate, os.path.join(workdir, 'plots'))
    return {'loss': loss, **task.metrics(predictions, tracks)}

  return evaluate


def _resolve_best_metric(config, task):
  """An empty ``checkpoint.best_metric`` means the task's own (e.g. onset F at 50 ms)."""
  if not config.checkpoint.best_metric:
    config.checkpoint.best_metric = task.best_metric
    config.checkpoint.best_mode = task.best_mode


# --------------------------------------------------------------------- entry points

def train_and_evaluate(config, workdir: str):
  """Trains (resuming if ``workdir`` has checkpoints), evaluating on the eval split."""
  if config.train.heap_allocator:
    malloc.use_heap_allocator()
  sharding.use_host_devices(config.train.host_devices)
  sharding.maybe_initialize_distributed(bool(config.train.distributed))
  task = build_task(config)
  _resolve_best_metric(config, task)
  run_config.check(workdir, config, 'train')  # before anything reads or writes the workdir
  model = build_model(config, task)
  train_tracks = load_tracks(config, 'train', task)
  eval_tracks = load_tracks(config, 'eval', task)
  os.makedirs(workdir, exist_ok=True)
  std = fit_standardizer(config, workdir, train_tracks)
  features_fn = _features_fn(config, std)
  from mir_jax.data.pipeline import train_iterator  # pylint: disable=g-import-not-at-top
  local_bs = _local_batch_size(int(config.data.batch_size), 'data.batch_size')
  train_features_fn = features_fn
  if task.output_kind == 'sequence':
    resolve_whole_track_crop(config, train_tracks, features_fn)
    train_features_fn = _whole_clip_features_fn(features_fn, int(config.data.crop_frames))
  train_iter = train_iterator(
      train_tracks, feature_config(config), targets_fn=task.targets_fn, batch_size=local_bs,
      crop_frames=int(config.data.crop_frames), seed=int(config.seed),
      shard_index=jax.process_index(), shard_count=jax.process_count(),
      features_fn=train_features_fn, num_threads=int(config.data.num_threads))
  example = example_batch(config, jax.local_device_count(), task)
  trainer = loop.Trainer(config, model, task.loss, example)
  evaluate = make_evaluate_fn(config, task, trainer, eval_tracks, features_fn, workdir)
  state = loop.train(config, workdir, model=model, loss_fn=task.loss, train_iter=train_iter,
                     example_batch=example, evaluate_fn=lambda state: evaluate(state.params),
                     trainer=trainer)
  _plot_curves(workdir)
  return state


def restore_params(config, workdir: str, task, model, which: str = 'best'):
  """(params, step, trainer) from ``workdir``'s best or latest checkpoint."""
  if which not in ('best', 'latest'):
    raise ValueError(f"config.eval.checkpoint must be 'best' or 'latest', got {which!r}")
  trainer = loop.Trainer(config, model, task.loss,
                         example_batch(config, jax.local_device_count(), task))
  manager = checkpoint_lib.CheckpointManager(
      os.path.join(workdir, 'checkpoints'), best_metric=config.checkpoint.best_metric or None,
      best_mode=config.checkpoint.best_mode, read_only=True)
  restored = manager.restore(trainer.abstract_state, which=which)
  manager.close()
  if restored is None:
    raise FileNotFoundError(f'no checkpoint in {workdir}/checkpoints: train first')
  return restored.state.params, restored.step, trainer


def evaluate(config, workdir: str) -> dict:
  """``--mode=eval``: restores the best/latest checkpoint, writes ``eval_metrics.json``."""
  sharding.maybe_initialize_distributed(bool(config.train.distributed))
  task = build_task(config)
  _resolve_best_metric(config, task)
  run_config.check(workdir, config, 'eval')
  model = build_model(config, task)
  params, step, trainer = restore_params(config, workdir, task, model, config.eval.checkpoint)
  tracks = load_tracks(config, config.eval.split, task)
  features_fn = _features_fn(config, load_standardizer(workdir))
  metrics = make_evaluate_fn(config, task, trainer, tracks, features_fn, workdir)(params)
  result = {'step': step, 'split': config.eval.split, 'checkpoint': config.eval.checkpoint, **metrics}
  path = os.path.join(workdir, 'eval_metrics.json')
  prefix = str(config.eval.get('metrics_prefix', '') or '')
  if prefix:
    # Kept beside the training run's own metrics (its 'step' still tells a sweep the run
    # is finished), so a second evaluation adds columns instead of replacing the first.
    result = {prefix + name: value for name, value in result.items()}
    if os.path.exists(path):
      with open(path) as f:
        result = {**json.load(f), **result}
  if jax.process_index() == 0:
    writers.write_json_atomic(path, result)
  print(json.dumps(result, indent=2, sort_keys=True))
  return result


def _plot_curves(workdir: str) -> None:
  """Loss and eval-metric curves from metrics.jsonl into workdir/plots (best effort)."""
  if jax.process_index() != 0:
    return
  path = os.path.join(workdir, 'metrics.jsonl')
  if not os.path.exists(path):
    return
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  rows = [json.loads(line) for line in open(path) if line.strip()]
  os.makedirs(os.path.join(workdir, 'plots'), exist_ok=True)
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
  for split, ax in (('train', axes[0]), ('eval', axes[1])):
    sel = [r for r in rows if r.get('split') == split]
    names = ['loss'] if split == 'train' else sorted({k for r in sel for k in r} - {'step', 'split', 'time'})
    for name in names:
      pts = [(r['step'], r[name]) for r in sel if isinstance(r.get(name), (int, float))]
      if pts:
        ax.plot(*zip(*pts), label=name, marker='.' if split == 'eval' else None)
    ax.set_title(split)
    ax.set_xlabel('step')
    if names:
      ax.legend(fontsize=7)
  fig.tight_layout()
  try:
    with atomic_open(os.path.join(workdir, 'plots', 'curves.png'), 'wb') as f:
      fig.savefig(f, dpi=100, format='png')
  finally:
    plt.close(fig)
