"""Chord-sequence transcription: audio in, chord tokens with quantised durations out.

A chord sequence (``Track.chord_sequence``: ``(label, seconds, beats)`` rows) is
written as tokens ``C:maj <dur=4> G:maj <dur=2> ... </s>``: each chord label
reduced to the ``majmin`` vocabulary (``X`` counts as ``N``), followed by its
duration in beats quantised to the nearest of ``duration_bins``. Consecutive
chords that reduce to the same label stay separate tokens, as in the source.

Token ids: 0 ``<pad>``, 1 ``<s>``, 2 ``</s>``, then the chord labels, then the
duration tokens. Targets are ``targets_in = <s> y`` and ``targets_out = y </s>``
padded to ``max_tokens + 1``.

Decoding back to time needs the tempo and the first chord's onset, which the
sequence does not hold: :func:`tokens_to_segments` takes them as arguments and
:meth:`ChordSequenceTask.metrics` takes them from each reference track (its
chord-sequence seconds per beat, and the end of the ``N`` lead-in of its chord
.lab). Scores: ``mir_eval.chord`` majmin weighted accuracy over the reference's
time span, and token error rate (edit distance over tokens / reference tokens).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping, Sequence

import jax
import mir_eval
import numpy as np

from mir_jax.atomic import atomic_open
from mir_jax.data import annotations
from mir_jax.data import vocab as chord_vocab
from mir_jax.models.seq2seq import sequence_cross_entropy
from mir_jax.tasks.base import Task

PAD, START, END = 0, 1, 2
SPECIALS = ('<pad>', '<s>', '</s>')
DEFAULT_BINS = (1, 2, 3, 4, 5, 6, 7, 8, 12, 16)
LONG_TOKENS = 16  # references this long count as long sequences in the metrics


class TokenVocabulary:
  """Specials, majmin chord labels, then ``<dur=b>`` tokens for ``bins`` (beats)."""

  def __init__(self, duration_bins: Sequence[float] = DEFAULT_BINS, chord_vocab_name: str = 'majmin'):
    bins = tuple(float(b) for b in duration_bins)
    if not bins or any(b <= 0 for b in bins) or list(bins) != sorted(set(bins)):
      raise ValueError(f'duration_bins must be positive and increasing, got {duration_bins}')
    self.bins = np.asarray(bins)
    self.chord_vocab_name = chord_vocab_name
    self.chords = chord_vocab.chord_vocabulary(chord_vocab_name)
    self.durations = [f'<dur={b:g}>' for b in bins]
    self.tokens = list(SPECIALS) + self.chords + self.durations
    self.index = {t: i for i, t in enumerate(self.tokens)}
    self.first_chord = len(SPECIALS)
    self.first_duration = self.first_chord + len(self.chords)

  def __len__(self) -> int:
    return len(self.tokens)

  def chord_id(self, label: str) -> int:
    cls = chord_vocab.label_to_index(label, self.chord_vocab_name)
    return self.first_chord + max(cls, 0)  # X (ignore) -> N

  def duration_id(self, beats: float) -> int:
    # Nearest bin in log-duration: 5 beats is closer to 4 than to 6 by ratio.
    d = np.abs(np.log(self.bins) - np.log(max(float(beats), 1e-3)))
    return self.first_duration + int(np.argmin(d))

  def is_chord(self, token: int) -> bool:
    return self.first_chord <= token < self.first_duration

  def is_duration(self, token: int) -> bool:
    return self.first_duration <= token < len(self.tokens)

  def beats_of(self, token: int) -> float:
    return float(self.bins[token - self.first_duration])


def tokenize(sequence: Sequence[tuple[str, float, float]], vocab: TokenVocabulary) -> list[int]:
  """``[(label, seconds, beats), ...]`` -> token ids (no specials)."""
  ids = []
  for label, _, beats in sequence:
    ids += [vocab.chord_id(label), vocab.duration_id(beats)]
  return ids


def detokenize(tokens: Sequence[int], vocab: TokenVocabulary) -> list[tuple[str, float]]:
  """Token ids -> ``[(label, beats), ...]``, stopping at ``</s>``.

  Decoded output need not alternate chord and duration: a chord without a
  duration lasts the smallest bin, a duration without a chord extends the
  previous chord (or is dropped at the start); pads and ``<s>`` are skipped.
  """
  out: list[list] = []
  pending = None
  for t in (int(t) for t in tokens):
    if t == END:
      break
    if vocab.is_chord(t):
      if pending is not None:
        out.append([pending, float(vocab.bins[0])])
      pending = vocab.tokens[t]
    elif vocab.is_duration(t):
      if pending is not None:
        out.append([pending, vocab.beats_of(t)])
        pending = None
      elif out:
        out[-1][1] += vocab.beats_of(t)
  if pending is not None:
    out.append([pending, float(vocab.bins[0])])
  return [(label, beats) for label, beats in out]


def tokens_to_segments(tokens: Sequence[int], vocab: TokenVocabulary, seconds_per_beat: float,
                       start: float = 0.0) -> tuple[np.ndarray, list[str]]:
  """Token ids -> (intervals (N, 2) seconds, labels) starting at ``start``."""
  chords = detokenize(tokens, vocab)
  if not chords:
    return np.zeros((0, 2)), []
  beats = np.asarray([b for _, b in chords])
  ends = start + np.cumsum(beats) * seconds_per_beat
  starts = np.concatenate([[start], ends[:-1]])
  return np.stack([starts, ends], axis=1), [label for label, _ in chords]


def edit_distance(a: Sequence[int], b: Sequence[int]) -> int:
  """Levenshtein distance (unit insert, delete and substitute costs)."""
  a, b = list(a), list(b)
  prev = np.arange(len(b) + 1)
  for i, x in enumerate(a, 1):
    cur = np.empty_like(prev)
    cur[0] = i
    for j, y in enumerate(b, 1):
      cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
    prev = cur
  return int(prev[-1])


def strip_tokens(tokens: Sequence[int]) -> list[int]:
  """Tokens up to ``</s>`` without pads and ``<s>``."""
  out = []
  for t in (int(t) for t in tokens):
    if t == END:
      break
    if t not in (PAD, START):
      out.append(t)
  return out


def token_error_rate(predictions: Sequence[Sequence[int]], references: Sequence[Sequence[int]]) -> float:
  """Total edit distance / total reference tokens (corpus-level, like WER)."""
  edits = sum(edit_distance(strip_tokens(p), strip_tokens(r)) for p, r in zip(predictions, references))
  total = sum(len(strip_tokens(r)) for r in references)
  return edits / max(total, 1)


def majmin_score(ref_intervals, ref_labels, est_intervals, est_labels) -> tuple[float, float]:
  """(``mir_eval.chord`` majmin weighted accuracy, duration) over the reference span."""
  ref_intervals = np.asarray(ref_intervals, float)
  t_min, t_max = float(ref_intervals[0, 0]), float(ref_intervals[-1, 1])
  est_intervals = np.asarray(est_intervals, float).reshape(-1, 2)
  if len(est_labels) == 0:
    est_intervals, est_labels = np.array([[t_min, t_max]]), ['N']
  est_intervals, est_labels = mir_eval.util.adjust_intervals(
      est_intervals, list(est_labels), t_min, t_max, mir_eval.chord.NO_CHORD, mir_eval.chord.NO_CHORD)
  intervals, ref_l, est_l = mir_eval.util.merge_labeled_intervals(
      ref_intervals, list(ref_labels), est_intervals, est_labels)
  durations = mir_eval.util.intervals_to_durations(intervals)
  comparisons = mir_eval.chord.majmin(ref_l, est_l)
  return float(mir_eval.chord.weighted_accuracy(comparisons, durations)), float(durations.sum())


def reference_timing(track) -> tuple[float, float]:
  """(seconds per beat, first chord onset) of a track's reference annotations."""
  seq = track.chord_sequence
  beats = sum(b for _, _, b in seq)
  spb = sum(s for _, s, _ in seq) / beats if beats > 0 else 0.5
  start = 0.0
  if track.chord_labels is not None and len(track.chord_labels):
    for (t0, _), label in zip(track.chord_intervals, track.chord_labels):
      if label != 'N':
        start = float(t0)
        break
  return spb, start


def write_attention_map(path: str, features: np.ndarray, weights: np.ndarray,
                        token_names: Sequence[str], frame_rate: float,
                        frames_per_state: float) -> str:
  """Writes a PNG: the spectrogram above the attention weights of each output token.

  Args:
    path: the PNG to write (atomically: a temp file in the same folder, then replace).
    features: (T, bins) or (T, bins, channels) of one example (first channel shown).
    weights: (L, S) attention weights of the L decoded tokens over S encoder states.
    token_names: L labels for the rows.
    frame_rate: feature frames per second (for the time axis).
    frames_per_state: feature frames per encoder state (the total downsampling).
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  features = np.asarray(features)
  if features.ndim == 3:
    features = features[..., 0]
  weights = np.asarray(weights, float)
  if weights.ndim != 2 or weights.shape[0] != len(token_names):
    raise ValueError(f'weights {weights.shape} do not match {len(token_names)} token names')
  span = weights.shape[1] * frames_per_state / frame_rate
  height = 2 + 0.18 * len(token_names)
  fig, (ax0, ax1) = plt.subplots(2, 1, sharex=True, figsize=(10, height),
                                 gridspec_kw={'height_ratios': [2, max(1, 0.12 * len(token_names))]})
  ax0.imshow(features.T, origin='lower', aspect='auto', cmap='magma',
             extent=(0, features.shape[0] / frame_rate, 0, features.shape[1]))
  ax0.set_ylabel('bin')
  ax1.imshow(weights, origin='upper', aspect='auto', cmap='Greys', interpolation='nearest',
             extent=(0, span, len(token_names) - 0.5, -0.5))
  ax1.set_yticks(range(len(token_names)))
  ax1.set_yticklabels(token_names, fontsize=6)
  ax1.set_xlabel('time (s)')
  fig.tight_layout()
  try:
    with atomic_open(path, 'wb') as f:
      fig.savefig(f, dpi=100, format='png')
  finally:
    plt.close(fig)
  return path


@dataclasses.dataclass
class ChordSequencePrediction:
  """Decoded token ids of one track (without specials) and their chords in beats."""
  tokens: list[int]
  chords: list[tuple[str, float]]


class ChordSequenceTask(Task):
  """Chord-sequence transcription with a seq2seq model (token targets per clip).

  Unlike frame tasks, the model's logits are teacher-forced; evaluation first
  decodes token ids with :func:`mir_jax.models.seq2seq.decode` and passes them
  (not logits) to :meth:`decode`.
  """
  name = 'chord_seq'
  output_kind = 'sequence'
  best_metric = 'majmin'
  annotation = 'chord_sequence'
  output_suffix = '.chords.txt'

  def __init__(self, max_tokens: int = 64, duration_bins: Sequence[float] = DEFAULT_BINS,
               label_smoothing: float = 0.0):
    if max_tokens < 2:
      raise ValueError(f'config.task.max_tokens must be >= 2, got {max_tokens}')
    self.max_tokens = int(max_tokens)
    self.label_smoothing = float(label_smoothing)
    self.vocab = TokenVocabulary(duration_bins)
    self.num_outputs = len(self.vocab)
    self.start_id, self.end_id, self.pad_id = START, END, PAD

  def encode_targets(self, sequence) -> dict[str, np.ndarray]:
    """``targets_in``, ``targets_out`` (int32) and ``target_mask`` (bool), length max_tokens + 1.

    Sequences longer than ``max_tokens`` are cut (the end token then falls away),
    so choose ``max_tokens`` to cover the clips.
    """
    full = tokenize(sequence, self.vocab)
    ids = full[:self.max_tokens]
    length = self.max_tokens + 1
    t_in = np.zeros(length, np.int32)
    t_out = np.zeros(length, np.int32)
    t_in[0] = START
    t_in[1:len(ids) + 1] = ids[:length - 1]
    t_out[:len(ids)] = ids
    n = len(ids)
    if len(full) <= self.max_tokens:
      t_out[n] = END
      n += 1
    mask = np.arange(length) < n
    return {'targets_in': t_in, 'targets_out': t_out, 'target_mask': mask}

  def targets_fn(self, track, num_frames: int, frame_rate: float) -> tuple[dict, dict]:
    if track.chord_sequence is None:
      raise ValueError(f'track {track.track_id} has no chord_sequences/ annotation')
    return {}, self.encode_targets(track.chord_sequence)

  def loss(self, logits: jax.Array, batch: Mapping[str, jax.Array]) -> tuple[jax.Array, dict]:
    return sequence_cross_entropy(logits, batch['targets_out'], batch['target_mask'],
                                  self.label_smoothing)

  def decode(self, tokens: np.ndarray, frame_rate: float = 0.0) -> ChordSequencePrediction:
    """Decoded token ids of one track -> chords with beat durations."""
    ids = strip_tokens(np.asarray(tokens).reshape(-1))
    return ChordSequencePrediction(ids, detokenize(ids, self.vocab))

  def write(self, prediction: ChordSequencePrediction, out_dir: str, track_id: str,
            seconds_per_beat: float = 0.5) -> str:
    """Writes the chords as a chord-sequence file (seconds from ``seconds_per_beat``)."""
    path = os.path.join(out_dir, track_id + self.output_suffix)
    annotations.write_chord_sequence(
        path, [(label, beats * seconds_per_beat, beats) for label, beats in prediction.chords])
    return path

  def metrics(self, predictions: Sequence[ChordSequencePrediction], tracks: Sequence[Any]) -> dict[str, float]:
    """Duration-weighted majmin over tracks and corpus token error rate, with a breakdown.

    ``majmin`` and ``token_error_rate`` are the scores. Also:
    ``chord_token_error_rate`` / ``duration_token_error_rate`` (edit distance over
    the chord tokens alone / the duration tokens alone: which half errs), and
    ``majmin_long`` / ``token_error_rate_long`` / ``num_long`` over the tracks whose
    reference has at least :data:`LONG_TOKENS` tokens (where attention should
    matter most; left out when there are none).
    """
    scores, weights, refs, ests = [], [], [], []
    for pred, track in zip(predictions, tracks):
      spb, start = reference_timing(track)
      est_iv, est_lab = tokens_to_segments(pred.tokens, self.vocab, spb, start)
      ref_ids = tokenize(track.chord_sequence, self.vocab)
      ref_iv, ref_lab = tokens_to_segments(ref_ids, self.vocab, spb, start)
      if track.chord_labels is not None and len(track.chord_labels):
        ref_iv, ref_lab = np.asarray(track.chord_intervals), list(track.chord_labels)
      s, w = majmin_score(ref_iv, ref_lab, est_iv, est_lab)
      scores.append(s)
      weights.append(w)
      refs.append(ref_ids)
      ests.append(pred.tokens)
    majmin = float(np.average(scores, weights=weights)) if sum(weights) > 0 else 0.0
    out = {'majmin': majmin, 'token_error_rate': token_error_rate(ests, refs)}
    v = self.vocab
    for name, keep in (('chord', v.is_chord), ('duration', v.is_duration)):
      sub = lambda seqs: [[t for t in strip_tokens(s) if keep(t)] for s in seqs]  # pylint: disable=cell-var-from-loop
      out[f'{name}_token_error_rate'] = token_error_rate(sub(ests), sub(refs))
    long = [i for i, r in enumerate(refs) if len(r) >= LONG_TOKENS]
    if long:
      w_long = [weights[i] for i in long]
      out['majmin_long'] = (float(np.average([scores[i] for i in long], weights=w_long))
                            if sum(w_long) > 0 else 0.0)
      out['token_error_rate_long'] = token_error_rate([ests[i] for i in long],
                                                      [refs[i] for i in long])
      out['num_long'] = float(len(long))
    return out
