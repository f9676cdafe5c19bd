r"""Classic, non-learned MIR baselines scored like the learned models, side by side.

    python experiments/baselines.py
    python experiments/baselines.py --workdirs=onset=workdirs/onset_blstm,chord=workdirs/chord_crnn,key=workdirs/key_cnn,tagging=workdirs/tagging_crnn
    python experiments/baselines.py --config_arg=tiny --data_root=/tmp/data   # quick look

For each task the held-out set is the evaluation set of that task's config
(``configs/onset_blstm.py``, ``configs/chord_crnn.py``, ``configs/key_cnn.py``,
``configs/tagging_crnn.py``; rendered once if missing), and the metrics are the task's own (mir_eval):

* onsets: librosa's onset detector (spectral flux on a log-mel spectrogram,
  then librosa's peak picking), F-measure at ±50 ms;
* chords: CQT chroma (librosa), median-filtered over time, matched against
  the 24 major/minor triad templates (cosine), ``N`` on quiet frames, frames
  merged into segments; weighted majmin/root/mirex/sevenths;
* key: Krumhansl–Schmuckler, the Krumhansl–Kessler profiles correlated with
  the track's mean chroma; mir_eval weighted score and accuracy;
* tagging: bag of frames (Tzanetakis & Cook 2002; Mandel & Ellis 2005): the
  mean and standard deviation of 20 MFCCs and their deltas per track, one
  balanced logistic regression per tag (scikit-learn) fitted on the config's
  training set; macro ROC-AUC and PR-AUC. The only baseline that learns, from
  hand-made features: the bar a learned front end has to clear.

The learned column is read from ``<workdir>/eval_metrics.json`` (written by
training and ``--mode=eval``) for each ``task=workdir`` in ``--workdirs``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Sequence

import numpy as np

# Config files import ``configs.base``: make the repository root importable.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top,wrong-import-position
from mir_jax.data import vocab as vocab_lib
from mir_jax.tasks.chord import ChordTask, frames_to_segments
from mir_jax.tasks.key import KeyTask
from mir_jax.tasks.onset import OnsetTask

# Krumhansl & Kessler (1982) probe-tone profiles, tonic first.
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])

#: task -> (config file, its primary metric, other metrics shown).
TASK_CONFIGS = {
    'onset': ('onset_blstm', 'f_measure_50ms', ()),
    'chord': ('chord_crnn', 'majmin', ('root', 'mirex', 'sevenths')),
    'key': ('key_cnn', 'weighted_score', ('accuracy',)),
    'tagging': ('tagging_crnn', 'roc_auc_macro', ('pr_auc_macro',)),
}
_LABEL_FIELD = {'onset': 'onsets', 'chord': 'chord_labels', 'key': 'key', 'tagging': 'tags'}


# ------------------------------------------------------------------ the methods

def onset_baseline(y: np.ndarray, sr: int, hop_length: int = 512) -> np.ndarray:
  """Onset times (s): ``librosa.onset.onset_detect`` (spectral flux + peak picking)."""
  import librosa
  return librosa.onset.onset_detect(y=np.asarray(y, np.float32), sr=sr, hop_length=hop_length,
                                    units='time')


def chord_templates() -> np.ndarray:
  """(25, 12) unit-norm chroma templates in ``majmin`` class order (row 0, ``N``, is zero)."""
  templates = np.zeros((vocab_lib.num_classes('majmin'), 12))
  for root in range(12):
    for block, third in ((0, 4), (1, 3)):  # major, minor
      templates[1 + 12 * block + root, [root, (root + third) % 12, (root + 7) % 12]] = 1.0
  norms = np.linalg.norm(templates, axis=1, keepdims=True)
  return templates / np.maximum(norms, 1e-12)


def chroma(y: np.ndarray, sr: int, hop_length: int) -> np.ndarray:
  """(12, frames) CQT chroma of ``y`` (librosa, per-frame max-normalised)."""
  import librosa
  return librosa.feature.chroma_cqt(y=np.asarray(y, np.float32), sr=sr, hop_length=hop_length)


def chord_baseline(y: np.ndarray, sr: int, hop_length: int = 2048, median_frames: int = 9,
                   silence_db: float = -40.0) -> tuple[np.ndarray, list[str]]:
  """Chord segments by triad template matching on median-filtered chroma.

  Frames whose RMS is more than ``-silence_db`` dB below the track's loudest
  frame are ``N``.
  """
  import librosa
  from scipy import ndimage
  c = chroma(y, sr, hop_length)
  if median_frames > 1:
    c = ndimage.median_filter(c, size=(1, median_frames), mode='nearest')
  c = c / np.maximum(np.linalg.norm(c, axis=0, keepdims=True), 1e-12)
  classes = np.argmax(chord_templates() @ c, axis=0)
  rms = librosa.feature.rms(y=np.asarray(y, np.float32), hop_length=hop_length)[0]
  n = min(len(rms), len(classes))
  db = librosa.amplitude_to_db(rms[:n], ref=np.max(rms) if rms.size else 1.0)
  classes = classes[:n].copy()
  classes[db < silence_db] = 0
  return frames_to_segments(classes, sr / hop_length, 'majmin')


def key_from_chroma(mean_chroma: np.ndarray) -> str:
  """Krumhansl–Schmuckler: the key whose rotated profile best correlates with the chroma."""
  mean_chroma = np.asarray(mean_chroma, np.float64).reshape(12)
  best, best_r = 0, -np.inf
  for index in range(vocab_lib.NUM_KEYS):
    mode, tonic = divmod(index, 12)
    profile = np.roll(KK_MINOR if mode else KK_MAJOR, tonic)
    r = np.corrcoef(profile, mean_chroma)[0, 1]
    if np.isfinite(r) and r > best_r:
      best, best_r = index, r
  return vocab_lib.index_to_key(best)


def key_baseline(y: np.ndarray, sr: int, hop_length: int = 4096) -> str:
  """Key string of ``y`` by Krumhansl–Schmuckler on its mean CQT chroma."""
  return key_from_chroma(chroma(y, sr, hop_length).mean(axis=1))


def mfcc_summary(y: np.ndarray, sr: int, n_mfcc: int = 20) -> np.ndarray:
  """(4 * n_mfcc,) mean and std of the MFCCs and of their deltas over the track."""
  import librosa
  m = librosa.feature.mfcc(y=np.asarray(y, np.float32), sr=sr, n_mfcc=n_mfcc)
  d = librosa.feature.delta(m, mode='nearest')
  return np.concatenate([m.mean(1), m.std(1), d.mean(1), d.std(1)])


def tagging_baseline(train_x: np.ndarray, train_tags: np.ndarray,
                     test_x: np.ndarray) -> np.ndarray:
  """(N_test, K) tag probabilities from per-tag logistic regressions on summary features.

  A tag with one class only in training gets its training rate as a constant score.
  """
  from sklearn.linear_model import LogisticRegression
  from sklearn.preprocessing import StandardScaler
  scaler = StandardScaler().fit(train_x)
  a, b = scaler.transform(train_x), scaler.transform(test_x)
  tags = np.asarray(train_tags) > 0
  out = np.empty((len(b), tags.shape[1]))
  for k in range(tags.shape[1]):
    if tags[:, k].all() or not tags[:, k].any():
      out[:, k] = tags[:, k].mean()
      continue
    lr = LogisticRegression(C=0.1, class_weight='balanced', max_iter=2000).fit(a, tags[:, k])
    out[:, k] = lr.predict_proba(b)[:, 1]
  return out


# ------------------------------------------------------------------ scoring

def score_baseline(task: str, tracks: Sequence, sample_rate: int = 22050,
                   train_tracks: Sequence = ()) -> dict[str, float]:
  """The task's metrics of its baseline on ``tracks`` (audio read at ``sample_rate``).

  ``train_tracks`` (tagging only) are what the tag classifiers are fitted on.
  """
  from mir_jax.audio.io import load_audio
  if task == 'tagging':
    from mir_jax.tasks.tagging import tag_metrics
    if not len(train_tracks):
      raise ValueError('the tagging baseline needs training tracks')
    summary = lambda ts: np.stack([mfcc_summary(load_audio(t.audio_path, sample_rate),
                                                sample_rate) for t in ts])
    scores = tagging_baseline(summary(train_tracks), np.stack([t.tags for t in train_tracks]),
                              summary(tracks))
    return tag_metrics(np.stack([t.tags for t in tracks]), scores)
  if task == 'onset':
    method, scorer = onset_baseline, OnsetTask()
  elif task == 'chord':
    method, scorer = chord_baseline, ChordTask(vocab='majmin')
  elif task == 'key':
    method, scorer = key_baseline, KeyTask()
  else:
    raise ValueError(f'no baseline for task {task!r}; known: {sorted(TASK_CONFIGS)}')
  predictions = [method(load_audio(t.audio_path, sample_rate), sample_rate) for t in tracks]
  return scorer.metrics(predictions, tracks)


def eval_tracks(task: str, config_arg: str = '', data_root: str = '', split: str = 'eval') -> list:
  """The held-out (or ``split='train'``) tracks of ``task``'s config (rendered if missing)
  that carry its labels."""
  import importlib
  from mir_jax.data.datasets import load_dataset_folder
  from mir_jax.train import experiment
  config = importlib.import_module(f'configs.{TASK_CONFIGS[task][0]}').get_config(config_arg)
  if data_root:
    config.data.root = data_root
  tracks, _ = load_dataset_folder(experiment.dataset_dir(config, split))
  return [t for t in tracks if getattr(t, _LABEL_FIELD[task]) is not None]


def learned_metrics(workdir: str) -> dict | None:
  path = os.path.join(os.path.expanduser(workdir), 'eval_metrics.json')
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def format_table(rows: Sequence[tuple[str, str, float, float | None]]) -> str:
  """Text table of (task, metric, baseline, learned or None) with the margin."""
  lines = [f'{"task":<7} {"metric":<16} {"baseline":>9} {"learned":>9} {"margin":>8}']
  for task, metric, base, learned in rows:
    learned_s = f'{learned:9.3f}' if learned is not None else f'{"-":>9}'
    margin_s = f'{learned - base:+8.3f}' if learned is not None else f'{"-":>8}'
    lines.append(f'{task:<7} {metric:<16} {base:9.3f} {learned_s} {margin_s}')
  return '\n'.join(lines)


def run(tasks: Sequence[str], workdirs: dict[str, str], config_arg: str = '',
        data_root: str = '') -> list[tuple[str, str, float, float | None]]:
  """Scores the baselines of ``tasks`` and pairs them with the learned metrics."""
  rows = []
  for task in tasks:
    _, primary, others = TASK_CONFIGS[task]
    train = eval_tracks(task, config_arg, data_root, 'train') if task == 'tagging' else ()
    base = score_baseline(task, eval_tracks(task, config_arg, data_root), train_tracks=train)
    learned = learned_metrics(workdirs[task]) if task in workdirs else None
    for metric in (primary,) + tuple(others):
      value = None if learned is None or metric not in learned else float(learned[metric])
      rows.append((task, metric, float(base[metric]), value))
  return rows


def main(argv):
  from absl import flags
  del argv
  flags_ = flags.FLAGS
  workdirs = {}
  for item in filter(None, (flags_.workdirs or '').split(',')):
    task, sep, path = item.partition('=')
    if not sep or task not in TASK_CONFIGS:
      raise ValueError(f'--workdirs entries are task=path with task in {sorted(TASK_CONFIGS)}, '
                       f'got {item!r}')
    workdirs[task] = path
  rows = run(flags_.tasks, workdirs, flags_.config_arg, flags_.data_root)
  print(format_table(rows))
  if flags_.output:
    from mir_jax.data.annotations import atomic_write_text
    out = [dict(zip(('task', 'metric', 'baseline', 'learned'), r)) for r in rows]
    atomic_write_text(flags_.output, json.dumps(out, indent=1) + '\n')


if __name__ == '__main__':
  from absl import app
  from absl import flags
  flags.DEFINE_list('tasks', list(TASK_CONFIGS), 'Tasks to score: onset, chord, key, tagging.')
  flags.DEFINE_string('workdirs', '', 'task=workdir pairs (comma-separated) of trained models.')
  flags.DEFINE_string('config_arg', '', "Argument of every task's config (e.g. 'tiny').")
  flags.DEFINE_string('data_root', '', 'config.data.root override (where sets are rendered).')
  flags.DEFINE_string('output', '', 'Also write the table as JSON here.')
  app.run(main)
