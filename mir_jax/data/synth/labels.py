"""Exact labels of a composed piece, derived from its MIDI score and chord plan.

Conventions (also recorded in each dataset's ``manifest.json``):

* onsets: the start times of every note of every instrument, drum hits included,
  sorted and merged: an onset within ``ONSET_MERGE_SECONDS`` (10 ms) of the first
  onset of the current group joins that group, which is labelled by its earliest
  time (the audible attack starts there). Guitar strums are spread over <= 8 ms so a
  strum is one onset.
* chords: contiguous segments covering ``[0, duration]``; full Harte labels with
  sevenths (``G:7``, ``D:min7``, ``C:maj7``, ``B:hdim7``) and inversions as a Harte
  bass degree (``C:maj/3``) when a bass part plays the inversion; ``N`` for the
  silent lead-in and tail. ``chord_labels_majmin`` reduces them to the 25 classes
  (sevenths to their triad, diminished chords to ``min``, no bass).
* key: ``mir_eval`` form, e.g. ``'F# minor'``.
* chord sequence: the chord segments without the ``N`` lead-in and tail, as
  ``(harte_label, duration_seconds, duration_beats)``.
* tags: see :data:`TAG_NAMES`.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pretty_midi

from mir_jax.data.synth import composer

ONSET_MERGE_SECONDS = 0.010
TEMPO_CLASSES = (('tempo_slow', 0.0, 90.0), ('tempo_medium', 90.0, 130.0),
                 ('tempo_fast', 130.0, float('inf')))
# Merged onsets per second of music at and above which a piece is 'dense'.
DENSITY_THRESHOLD = 5.0


def _slug(name: str) -> str:
    return re.sub(r'[^a-z0-9]+', '_', name.lower()).strip('_')


def _palette():
    programs = sorted({p for ps in composer.ROLE_PROGRAMS.values() for p in ps})
    names = [f'inst_{_slug(pretty_midi.program_to_instrument_name(p))}' for p in programs]
    families = sorted({f'family_{_slug(pretty_midi.program_to_instrument_class(p))}'
                       for p in programs})
    return names, families


_INSTRUMENT_TAGS, _FAMILY_TAGS = _palette()
TAG_NAMES: tuple[str, ...] = tuple(
    _INSTRUMENT_TAGS + _FAMILY_TAGS + ['drums'] + [c[0] for c in TEMPO_CLASSES]
    + ['mode_major', 'mode_minor', 'density_low', 'density_high'])


@dataclasses.dataclass
class Labels:
    """All labels of one piece (times in seconds)."""

    onsets: np.ndarray
    chord_intervals: np.ndarray
    chord_labels: list[str]
    chord_labels_majmin: list[str]
    key: str
    tags: dict[str, int]
    chord_sequence: list[tuple[str, float, float]]

    def tag_vector(self) -> np.ndarray:
        """Tags as an int8 vector in :data:`TAG_NAMES` order."""
        return np.array([self.tags[name] for name in TAG_NAMES], dtype=np.int8)


def merge_onsets(times, window: float = ONSET_MERGE_SECONDS) -> np.ndarray:
    """Sorts onset times and merges each group within ``window`` of its first onset."""
    times = np.sort(np.asarray(times, dtype=np.float64))
    out = []
    for t in times:
        if not out or t - out[-1] > window:
            out.append(t)
    return np.round(np.asarray(out, dtype=np.float64), 6)


def derive_labels(piece) -> Labels:
    """Labels of a :class:`composer.Piece` from its score and chord plan."""
    onsets = merge_onsets([n.start for inst in piece.midi.instruments for n in inst.notes])

    intervals, full, majmin = [], [], []
    first, last = piece.chords[0].start, piece.chords[-1].end
    if first > 0:
        intervals.append((0.0, first))
        full.append('N')
        majmin.append('N')
    for span in piece.chords:
        intervals.append((span.start, span.end))
        full.append(span.chord.harte)
        majmin.append(span.chord.majmin)
    if last < piece.duration:
        intervals.append((last, piece.duration))
        full.append('N')
        majmin.append('N')
    sequence = [(s.chord.harte, round(s.end - s.start, 6), float(s.beats))
                for s in piece.chords]

    tags = dict.fromkeys(TAG_NAMES, 0)
    for inst in piece.midi.instruments:
        if not inst.notes:
            continue
        if inst.is_drum:
            tags['drums'] = 1
            continue
        tags[f'inst_{_slug(pretty_midi.program_to_instrument_name(inst.program))}'] = 1
        tags[f'family_{_slug(pretty_midi.program_to_instrument_class(inst.program))}'] = 1
    for name, lo, hi in TEMPO_CLASSES:
        tags[name] = int(lo <= piece.tempo < hi)
    tags[f'mode_{piece.key.mode}'] = 1
    rate = len(onsets) / max(last - first, 1e-6)
    tags['density_high' if rate >= DENSITY_THRESHOLD else 'density_low'] = 1

    return Labels(onsets=onsets, chord_intervals=np.round(np.asarray(intervals), 6),
                  chord_labels=full, chord_labels_majmin=majmin, key=piece.key.name,
                  tags=tags, chord_sequence=sequence)
