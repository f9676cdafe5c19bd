"""Prediction: audio files in, each task's standard output files out.

``predict(config, workdir, input_path, output_dir)`` restores the best (or
latest, ``config.eval.checkpoint``) checkpoint of ``workdir``, reads every
audio file under ``input_path`` (a file or a folder, searched recursively; any
format :func:`mir_jax.audio.io.load_audio` reads), runs the model over
overlapping chunks of ``config.predict.chunk_seconds`` (so any length fits in
memory), stitches the chunk outputs, decodes them with the task and writes
them with the annotation writers (onsets: ``<name>.onsets``, one time a line),
mirroring the input folder structure under ``output_dir``.
"""

from __future__ import annotations

import os
from typing import Sequence

import jax

from mir_jax.train import experiment
from mir_jax.train import run_config

AUDIO_EXTENSIONS = ('.wav', '.flac', '.ogg', '.mp3', '.aif', '.aiff', '.m4a', '.opus')


def find_audio(input_path: str) -> list[tuple[str, str]]:
  """(track_id, path) pairs: the file itself, or every audio file under a folder.

  The track id is the path relative to the folder without its extension, so
  outputs mirror the input tree.
  """
  input_path = os.path.expanduser(input_path)
  if os.path.isfile(input_path):
    return [(os.path.splitext(os.path.basename(input_path))[0], input_path)]
  if not os.path.isdir(input_path):
    raise FileNotFoundError(f'--input={input_path}: no such file or folder')
  found = []
  for root, dirs, files in os.walk(input_path):
    dirs.sort()
    for name in sorted(files):
      if name.lower().endswith(AUDIO_EXTENSIONS) and not name.startswith('.'):
        path = os.path.join(root, name)
        rel = os.path.relpath(path, input_path)
        found.append((os.path.splitext(rel)[0], path))
  if not found:
    raise FileNotFoundError(f'--input={input_path}: no audio files ({", ".join(AUDIO_EXTENSIONS)})')
  return found


def predict(config, workdir: str, input_path: str, output_dir: str) -> list[str]:
  """Writes the task's output file for every audio file of ``input_path``; returns the paths."""
  from mir_jax.data.datasets import Track  # pylint: disable=g-import-not-at-top
  task = experiment.build_task(config)
  experiment._resolve_best_metric(config, task)  # pylint: disable=protected-access
  run_config.check(workdir, config, 'predict')
  model = experiment.build_model(config, task)
  params, step, trainer = experiment.restore_params(config, workdir, task, model,
                                                    config.eval.checkpoint)
  fcfg = experiment.feature_config(config)
  features_fn = experiment._features_fn(  # pylint: disable=protected-access
      config, experiment.load_standardizer(workdir))
  chunk = max(1, int(round(float(config.predict.chunk_seconds) * fcfg.frame_rate)))
  overlap = int(round(float(config.predict.overlap_seconds) * fcfg.frame_rate))
  if not 0 <= overlap < chunk:
    raise ValueError(f'config.predict.overlap_seconds must be in [0, chunk_seconds), got '
                     f'{config.predict.overlap_seconds} vs {config.predict.chunk_seconds}')
  files = find_audio(input_path)
  tracks = [Track(track_id=tid, audio_path=path) for tid, path in files]
  if task.output_kind == 'sequence':
    # A token sequence describes a whole clip: decode whole files, no chunks.
    decode_fn = experiment.make_sequence_decoder(config, task, trainer)
    outputs, _ = experiment.decode_tracks(
        config, task, params, trainer, decode_fn, tracks, features_fn,
        batch_size=int(config.predict.batch_size), with_targets=False)
    written = []
    if jax.process_index() == 0:
      os.makedirs(output_dir, exist_ok=True)
      for track, out in zip(tracks, outputs):
        written.append(task.write(task.decode(out.tokens), output_dir, track.track_id))
      print(f'checkpoint step {step}: wrote {len(written)} files to {output_dir}')
    return written
  # Predict needs no labels: targets_fn sees tracks without annotations.
  logits, _ = experiment.predict_tracks(
      config, task, params, trainer, tracks, features_fn, chunk_frames=chunk,
      chunk_overlap=overlap, batch_size=int(config.predict.batch_size))
  written = []
  if jax.process_index() == 0:
    os.makedirs(output_dir, exist_ok=True)
    for track, out in zip(tracks, logits):
      written.append(task.write(task.decode(out, fcfg.frame_rate), output_dir, track.track_id))
    print(f'checkpoint step {step}: wrote {len(written)} files to {output_dir}')
  return written
