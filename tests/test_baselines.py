"""Classic baselines: template chords, Krumhansl-Schmuckler keys and librosa onsets on hand-made audio."""

import importlib.util
import os

import mir_eval
import numpy as np
import pytest

SR = 22050
_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'experiments',
                     'baselines.py')
_spec = importlib.util.spec_from_file_location('mir_jax_experiments_baselines', _PATH)
baselines = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(baselines)


def tones(midi_notes, seconds, sr=SR):
  """A sum of harmonic tones (3 partials) at the given MIDI pitches."""
  t = np.arange(int(seconds * sr)) / sr
  y = np.zeros_like(t)
  for m in midi_notes:
    f = 440.0 * 2 ** ((m - 69) / 12)
    for k, a in ((1, 1.0), (2, 0.5), (3, 0.25)):
      y += a * np.sin(2 * np.pi * k * f * t)
  return (0.1 * y / max(len(midi_notes), 1)).astype(np.float32)


def test_chord_templates_by_hand():
  templates = baselines.chord_templates()
  assert templates.shape == (25, 12)
  np.testing.assert_array_equal(templates[0], 0.0)
  np.testing.assert_array_equal(np.flatnonzero(templates[1]), [0, 4, 7])  # C:maj
  np.testing.assert_array_equal(np.flatnonzero(templates[13 + 9]), [0, 4, 9])  # A:min = A C E


def test_chord_baseline_finds_triads_and_silence():
  y = np.concatenate([np.zeros(SR), tones([60, 64, 67], 3.0), tones([57, 60, 64], 3.0),
                      tones([62, 66, 69], 3.0)])  # silence, C, Am, D
  intervals, labels = baselines.chord_baseline(y, SR)
  ref_iv = np.array([[0.0, 1.0], [1.0, 4.0], [4.0, 7.0], [7.0, 10.0]])
  ref_lab = ['N', 'C:maj', 'A:min', 'D:maj']
  scores = mir_eval.chord.evaluate(ref_iv, ref_lab, intervals, labels)
  assert scores['majmin'] > 0.85


@pytest.mark.parametrize('tonic,mode', [(0, 'major'), (9, 'minor'), (6, 'major'), (4, 'minor')])
def test_krumhansl_schmuckler_on_profile_chroma(tonic, mode):
  profile = baselines.KK_MINOR if mode == 'minor' else baselines.KK_MAJOR
  key = baselines.key_from_chroma(np.roll(profile, tonic))
  assert mir_eval.key.weighted_score(f'{["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"][tonic]} {mode}', key) == 1.0


def test_key_baseline_on_a_cadence():
  # I-IV-V-I in G major, each chord with its bass an octave down.
  chords = [[55, 59, 62, 43], [60, 64, 67, 48], [62, 66, 69, 50], [55, 59, 62, 43]]
  y = np.concatenate([tones(c, 1.5) for c in chords])
  assert baselines.key_baseline(y, SR) == 'G major'


def test_onset_baseline_on_clicks():
  y = np.zeros(4 * SR, np.float32)
  rng = np.random.default_rng(0)
  ref = np.array([0.5, 1.2, 2.0, 2.7, 3.4])
  for t in ref:
    i = int(t * SR)
    y[i:i + 2000] += rng.normal(size=2000).astype(np.float32) * np.exp(-np.arange(2000) / 300)
  est = baselines.onset_baseline(y, SR)
  f, _, _ = mir_eval.onset.f_measure(ref, est, window=0.05)
  assert f == 1.0


def test_table_pairs_baseline_and_learned():
  text = baselines.format_table([('key', 'weighted_score', 0.8, 0.9), ('chord', 'majmin', 0.6, None)])
  lines = text.splitlines()
  assert lines[1].split() == ['key', 'weighted_score', '0.800', '0.900', '+0.100']
  assert lines[2].split() == ['chord', 'majmin', '0.600', '-', '-']


def test_tagging_baseline_separates_timbres():
  """Tag 0 = bright tones (many partials), tag 1 = noise; tag 2 is never set (constant score)."""
  rng = np.random.default_rng(0)

  def clip(kind):
    pitch = int(rng.integers(48, 72))
    if kind == 'noise':
      return (0.05 * rng.normal(size=SR)).astype(np.float32)
    t = np.arange(SR) / SR
    f = 440.0 * 2 ** ((pitch - 69) / 12)
    parts = range(1, 12) if kind == 'bright' else (1,)
    return (0.1 * sum(np.sin(2 * np.pi * k * f * t) / k for k in parts)).astype(np.float32)

  kinds = ['bright', 'pure', 'noise'] * 8
  x = np.stack([baselines.mfcc_summary(clip(k), SR) for k in kinds])
  tags = np.array([[k == 'bright', k == 'noise', 0] for k in kinds], np.int8)
  scores = baselines.tagging_baseline(x[:12], tags[:12], x[12:])
  from sklearn.metrics import roc_auc_score  # pylint: disable=g-import-not-at-top
  assert roc_auc_score(tags[12:, 0], scores[:, 0]) == 1.0
  assert roc_auc_score(tags[12:, 1], scores[:, 1]) == 1.0
  np.testing.assert_array_equal(scores[:, 2], 0.0)
