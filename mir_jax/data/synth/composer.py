"""A random composer: key, functional harmony, voicings, bass, melody, drums, instruments.

``compose(rng, duration)`` returns a :class:`Piece` holding the ``pretty_midi`` score
and its exact labels. Everything random is drawn from the ``rng`` passed in, so the
same generator state gives the same piece.

Form of a piece: a short silence (lead-in, labelled ``N``), phrases of four chords
that start on the tonic and close with a cadence (authentic V-I, plagal IV-I, half
cadence on V, or deceptive V-vi), the last phrase always closing on the tonic, then
at least ``TAIL_SECONDS`` of silence so release tails and reverb fit in the clip.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pretty_midi

from mir_jax.data.synth import theory
from mir_jax.data.synth.theory import Chord, Key

TEMPO_RANGE = (60.0, 180.0)
TAIL_SECONDS = 1.0
MAX_LEAD_IN_SECONDS = 0.5
MIN_DURATION_SECONDS = 2.0
MAX_DRAFTS = 20

# General MIDI programs the composer draws from, by role. Families are the GM
# instrument classes (pretty_midi.program_to_instrument_class).
ROLE_PROGRAMS = {
    'comp': (0, 1, 4, 5, 11, 12, 16, 19, 21, 24, 25, 26, 27, 29, 45, 46),
    'pad': (16, 19, 48, 49, 50, 52, 61, 88, 89, 90, 91),
    'melody': (0, 4, 11, 12, 16, 24, 26, 27, 29, 40, 41, 42, 56, 57, 60, 65, 66, 68, 71, 73,
               75, 80, 81),
    'bass': (32, 33, 34, 35, 38, 43),
}
# Pitch ranges (MIDI numbers) per role; the bass stays below the comping voices so
# the lowest sounding note is the one written in the chord label's bass.
ROLE_RANGES = {'bass': (28, 50), 'comp': (52, 79), 'pad': (48, 76), 'melody': (62, 86)}
ROLE_PROBABILITY = {'bass': 0.85, 'pad': 0.45, 'melody': 0.85, 'drums': 0.6}

# Scale-degree chords: semitones above the tonic, triad quality, seventh quality.
_DEGREES = {
    'major': ((0, 'maj', 'maj7'), (2, 'min', 'min7'), (4, 'min', 'min7'), (5, 'maj', 'maj7'),
              (7, 'maj', '7'), (9, 'min', 'min7'), (11, 'dim', 'hdim7')),
    'minor': ((0, 'min', 'min7'), (2, 'dim', 'hdim7'), (3, 'maj', 'maj7'), (5, 'min', 'min7'),
              (7, 'maj', '7'), (8, 'maj', 'maj7'), (11, 'dim', 'dim7')),
}
# Functional-harmony transitions between scale degrees (0 = I ... 6 = vii).
_NEXT_DEGREE = {
    0: ((3, 4, 5, 1, 2), (0.3, 0.25, 0.25, 0.12, 0.08)),
    1: ((4, 6, 3), (0.7, 0.1, 0.2)),
    2: ((5, 3), (0.6, 0.4)),
    3: ((4, 0, 1), (0.5, 0.3, 0.2)),
    4: ((0, 5), (0.8, 0.2)),
    5: ((1, 3, 4), (0.4, 0.35, 0.25)),
    6: ((0,), (1.0,)),
}

# GM percussion keys.
KICK, SNARE, CLOSED_HAT, OPEN_HAT, CRASH, RIDE = 36, 38, 42, 46, 49, 51


@dataclasses.dataclass
class ChordSpan:
    """A chord played from ``start`` to ``end`` seconds, ``beats`` beats long."""

    start: float
    end: float
    beats: float
    chord: Chord


@dataclasses.dataclass
class Piece:
    """A composed piece: the MIDI score, what the composer decided, and its labels.

    Attributes:
      midi: the score; rendering it gives the audio.
      key: global key.
      tempo: beats per minute (constant).
      beats_per_bar: meter numerator (the beat is a quarter note).
      duration: length in seconds of the rendered clip (music plus silent tail).
      chords: the chord plan, contiguous spans from the lead-in to the end of music.
      roles: GM program per role ('comp', 'pad', 'melody', 'bass'); drums separately.
      has_drums: whether a drum part plays.
      render_seed: seed for the renderer's random effects (reverb, noise, gain), so
        rendering a piece is deterministic.
      labels: exact labels derived from the score (a :class:`labels.Labels`).
    """

    midi: pretty_midi.PrettyMIDI
    key: Key
    tempo: float
    beats_per_bar: int
    duration: float
    chords: list[ChordSpan]
    roles: dict[str, int]
    has_drums: bool
    render_seed: int
    labels: object = None


def compose(rng: np.random.Generator, duration: float) -> Piece:
    """Composes a random piece ``duration`` seconds long (at least 2 s).

    The key label should be audible: a draft whose most common pitch class
    (weighted by note duration, drums excluded) is not the tonic is discarded and
    composed again, up to ``MAX_DRAFTS`` times (about half the drafts pass; the
    dominant is the usual rival, as it sounds in both I and V).
    """
    duration = float(duration)
    if not duration >= MIN_DURATION_SECONDS:
        raise ValueError(f'duration must be at least {MIN_DURATION_SECONDS} s, got {duration}')
    for _ in range(MAX_DRAFTS):
        piece = _draft(rng, duration)
        if int(np.argmax(pitch_class_histogram(piece.midi))) == piece.key.tonic:
            break
    return piece


def pitch_class_histogram(midi: pretty_midi.PrettyMIDI) -> np.ndarray:
    """Total sounding time per pitch class (C first) over the pitched instruments."""
    hist = np.zeros(12)
    for inst in midi.instruments:
        if not inst.is_drum:
            for n in inst.notes:
                hist[n.pitch % 12] += n.end - n.start
    return hist


def _draft(rng: np.random.Generator, duration: float) -> Piece:
    from mir_jax.data.synth import labels as labels_lib  # labels imports this module

    key = theory.ALL_KEYS[int(rng.integers(len(theory.ALL_KEYS)))]
    tempo = float(np.round(rng.uniform(*TEMPO_RANGE), 2))
    beats_per_bar = int(rng.choice([4, 3], p=[0.75, 0.25]))
    beat = 60.0 / tempo
    lead_in = float(np.round(rng.uniform(0.0, MAX_LEAD_IN_SECONDS), 3))
    total_beats = int(np.floor((duration - TAIL_SECONDS - lead_in) / beat))
    if total_beats < 1:
        # A very short clip at a slow tempo: drop the lead-in and play one short chord.
        lead_in, total_beats = 0.0, 1
        beat = min(beat, duration - TAIL_SECONDS)
        tempo = 60.0 / beat

    roles = {'comp': _pick(rng, ROLE_PROGRAMS['comp'])}
    for role in ('bass', 'pad', 'melody'):
        if rng.random() < ROLE_PROBABILITY[role]:
            roles[role] = _pick(rng, ROLE_PROGRAMS[role], exclude=roles.values())
    has_drums = bool(rng.random() < ROLE_PROBABILITY['drums'])

    chord_beats = _harmonic_rhythm(rng, total_beats, beats_per_bar)
    chords = _progression(rng, key, len(chord_beats), with_bass='bass' in roles)
    spans, t = [], lead_in
    for chord, nb in zip(chords, chord_beats):
        spans.append(ChordSpan(round(t, 6), round(t + nb * beat, 6), float(nb), chord))
        t += nb * beat
    spans = _merge_repeats(spans)

    midi = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    midi.time_signature_changes.append(pretty_midi.TimeSignature(beats_per_bar, 4, 0.0))
    dyn = _Dynamics(rng, lead_in, beat, beats_per_bar)
    parts = {
        'comp': lambda inst: _comp_part(rng, inst, spans, dyn, beat, beats_per_bar),
        'pad': lambda inst: _pad_part(rng, inst, spans, dyn),
        'bass': lambda inst: _bass_part(rng, inst, spans, dyn, beat, beats_per_bar),
        'melody': lambda inst: _melody_part(rng, inst, key, spans, dyn, beat, beats_per_bar,
                                            lead_in),
    }
    for role in ('bass', 'comp', 'pad', 'melody'):
        if role in roles:
            inst = pretty_midi.Instrument(program=roles[role], name=role)
            parts[role](inst)
            midi.instruments.append(inst)
    if has_drums:
        drums = pretty_midi.Instrument(program=0, is_drum=True, name='drums')
        _drum_part(rng, drums, lead_in, spans[-1].end, beat, beats_per_bar, dyn)
        midi.instruments.append(drums)

    piece = Piece(midi=midi, key=key, tempo=tempo, beats_per_bar=beats_per_bar,
                  duration=duration, chords=spans, roles=roles, has_drums=has_drums,
                  render_seed=int(rng.integers(2**31 - 1)))
    piece.labels = labels_lib.derive_labels(piece)
    return piece


def _pick(rng, options, exclude=()):
    remaining = [o for o in options if o not in set(exclude)] or list(options)
    return int(remaining[int(rng.integers(len(remaining)))])


def _harmonic_rhythm(rng, total_beats: int, beats_per_bar: int) -> list[int]:
    """Chord lengths in beats: a bar, two bars, or half a bar; the last one fills up."""
    choices = [beats_per_bar, 2 * beats_per_bar]
    probs = [0.6, 0.25]
    if beats_per_bar % 2 == 0:
        choices.append(beats_per_bar // 2)
        probs.append(0.15)
    probs = np.asarray(probs) / np.sum(probs)
    length = int(rng.choice(choices, p=probs))  # one harmonic rhythm per piece
    out, left = [], total_beats
    while left > 0:
        out.append(min(length, left))
        left -= out[-1]
    return out


def _degree_chord(key: Key, degree: int, seventh: bool) -> Chord:
    offset, triad, tetrad = _DEGREES[key.mode][degree]
    return Chord((key.tonic + offset) % 12, tetrad if seventh else triad)


def _progression(rng, key: Key, n: int, with_bass: bool) -> list[Chord]:
    """``n`` chords in phrases of four with cadences, secondary dominants, borrowed chords."""
    degrees = []
    for phrase_start in range(0, n, 4):
        length = min(4, n - phrase_start)
        final = phrase_start + length >= n
        phrase = [0 if phrase_start == 0 else int(rng.choice([0, 0, 0, 5, 3]))]
        while len(phrase) < length:
            left = length - len(phrase)
            prev = phrase[-1]
            if left == 1:
                if final or rng.random() < 0.6:
                    nxt = 0 if prev in (4, 6, 3) else 4
                    if nxt == 4 and prev == 4:
                        nxt = 0
                elif prev == 4:
                    nxt = int(rng.choice([0, 5], p=[0.75, 0.25]))  # authentic or deceptive
                else:
                    nxt = 4  # half cadence
            elif left == 2 and (final or rng.random() < 0.7):
                nxt = int(rng.choice([4, 3], p=[0.8, 0.2]))  # approach the cadence
            else:
                options, probs = _NEXT_DEGREE[prev]
                nxt = int(rng.choice(options, p=probs))
            phrase.append(nxt)
        degrees.extend(phrase)
    if n > 1 and degrees[-1] != 0:
        degrees[-1] = 0
    chords = []
    for d in degrees:
        seventh = rng.random() < (0.5 if d == 4 else 0.15)
        if d == 6:
            seventh = rng.random() < 0.5
        chords.append(_degree_chord(key, d, seventh))
    _borrow(rng, key, degrees, chords)
    _secondary_dominants(rng, degrees, chords)
    if with_bass:
        chords = [chords[0]] + [_invert(rng, c) for c in chords[1:-1]] + chords[-1:]
    return chords


def _borrow(rng, key: Key, degrees, chords) -> None:
    """Modal mixture: chords from the parallel mode, in place."""
    for i, d in enumerate(degrees):
        if i == 0 or i == len(degrees) - 1:
            continue
        if key.mode == 'major':
            if d == 3 and rng.random() < 0.15:
                chords[i] = Chord((key.tonic + 5) % 12, 'min')  # iv
            elif d == 5 and rng.random() < 0.12:
                chords[i] = Chord((key.tonic + 8) % 12, 'maj')  # bVI
            elif d == 4 and degrees[i + 1] == 0 and rng.random() < 0.1:
                chords[i] = Chord((key.tonic + 10) % 12, 'maj')  # bVII - I
        elif d == 3 and rng.random() < 0.12:
            chords[i] = Chord((key.tonic + 5) % 12, 'maj')  # Dorian IV


def _secondary_dominants(rng, degrees, chords) -> None:
    """Replace a chord by the dominant of the next one (V7/x), never the first chord."""
    for i in range(1, len(chords) - 1):
        target = chords[i + 1]
        if degrees[i + 1] in (1, 2, 3, 4, 5) and target.quality in ('maj', 'min', '7', 'min7',
                                                                     'maj7'):
            if degrees[i] != 0 and rng.random() < 0.2:
                chords[i] = Chord((target.root + 7) % 12, str(rng.choice(['7', 'maj'])))


def _invert(rng, chord: Chord) -> Chord:
    u = rng.random()
    if u < 0.12:
        return Chord(chord.root, chord.quality, chord.intervals[1])
    if u < 0.16:
        return Chord(chord.root, chord.quality, chord.intervals[2])
    return chord


def _merge_repeats(spans: list[ChordSpan]) -> list[ChordSpan]:
    out = [spans[0]]
    for s in spans[1:]:
        if s.chord == out[-1].chord:
            out[-1] = ChordSpan(out[-1].start, s.end, out[-1].beats + s.beats, s.chord)
        else:
            out.append(s)
    return out


class _Dynamics:
    """Velocity model: a piece level, a slow swell per phrase, accents on downbeats."""

    def __init__(self, rng, lead_in, beat, beats_per_bar):
        self.level = rng.uniform(60, 100)
        self.swell = rng.uniform(0, 18)
        self.phrase = 4 * beats_per_bar * beat * float(rng.choice([2, 4]))
        self.lead_in, self.beat, self.bpb = lead_in, beat, beats_per_bar
        self.rng = rng

    def velocity(self, t: float, offset: float = 0.0) -> int:
        pos = (t - self.lead_in) / self.beat
        accent = 8.0 if abs(pos - round(pos / self.bpb) * self.bpb) < 1e-3 else 0.0
        swell = self.swell * np.sin(np.pi * ((t - self.lead_in) % self.phrase) / self.phrase)
        v = self.level + offset + accent + swell + self.rng.normal(0, 4)
        return int(np.clip(round(v), 20, 127))


def _add(inst, pitch, start, end, velocity):
    if end - start < 0.02:
        return
    inst.notes.append(pretty_midi.Note(velocity=int(velocity), pitch=int(pitch),
                                       start=float(round(start, 6)), end=float(round(end, 6))))


def _voicing(chord: Chord, low: int, high: int, prev_center: float) -> list[int]:
    """Close-position voicing inside [low, high], the inversion nearest the previous one."""
    best, best_cost = None, None
    pcs = chord.pitch_classes
    for rotation in range(len(pcs)):
        order = pcs[rotation:] + pcs[:rotation]
        for base in range(low, high):
            if base % 12 != order[0]:
                continue
            notes = [base]
            for pc in order[1:]:
                notes.append(notes[-1] + (pc - notes[-1]) % 12)
            if notes[-1] > high:
                continue
            cost = abs(sum(notes) / len(notes) - prev_center)
            if best_cost is None or cost < best_cost:
                best, best_cost = notes, cost
    return best


def _comp_part(rng, inst, spans, dyn, beat, bpb):
    low, high = ROLE_RANGES['comp']
    style = str(rng.choice(['block', 'beats', 'arpeggio', 'strum', 'offbeat']))
    guitar = 24 <= inst.program <= 31
    center = rng.uniform(60, 68)
    for span in spans:
        notes = _voicing(span.chord, low, high, center)
        center = float(np.mean(notes))
        if style == 'block':
            onsets = [span.start]
            length = span.end - span.start
        elif style == 'arpeggio':
            onsets = list(np.arange(span.start, span.end - 1e-6, beat / 2))
            length = beat / 2
        elif style == 'offbeat':
            onsets = [span.start] + list(np.arange(span.start + beat / 2, span.end - 1e-6, beat))
            length = beat / 2
        else:
            onsets = list(np.arange(span.start, span.end - 1e-6, beat))
            length = beat
        for k, t in enumerate(onsets):
            end = min(t + length * 0.95, span.end)
            vel = dyn.velocity(t, offset=-6)
            if style == 'arpeggio':
                _add(inst, notes[k % len(notes)], t, min(t + beat * 1.5, span.end), vel)
                continue
            for j, p in enumerate(notes):
                # Strums spread the strings over at most 8 ms so they merge into one onset.
                delay = j * 0.008 / max(1, len(notes) - 1) if (style == 'strum' or guitar) else 0.0
                _add(inst, p, t + delay, end, vel)


def _pad_part(rng, inst, spans, dyn):
    low, high = ROLE_RANGES['pad']
    center = rng.uniform(58, 66)
    for span in spans:
        notes = _voicing(span.chord, low, high, center)
        center = float(np.mean(notes))
        for p in notes:
            _add(inst, p, span.start, span.end, dyn.velocity(span.start, offset=-14))


def _bass_part(rng, inst, spans, dyn, beat, bpb):
    low, high = ROLE_RANGES['bass']
    style = str(rng.choice(['whole', 'beats', 'root_fifth', 'eighths']))
    register = int(rng.integers(low, 41))
    for span in spans:
        bass = register + (span.chord.bass_pc - register) % 12
        if bass > high:
            bass -= 12
        fifth = bass + 7 if bass + 7 <= high else bass - 5
        if style == 'whole':
            _add(inst, bass, span.start, span.end, dyn.velocity(span.start))
            continue
        step = beat / 2 if style == 'eighths' else beat
        for k, t in enumerate(np.arange(span.start, span.end - 1e-6, step)):
            pitch = fifth if (style == 'root_fifth' and k % 2 == 1) else bass
            _add(inst, pitch, t, min(t + step * 0.9, span.end), dyn.velocity(t))


_RHYTHMS = {
    4: ([1, 1, 1, 1], [2, 1, 1], [1.5, 0.5, 2], [0.5] * 8, [1, 0.5, 0.5, 2], [3, 1], [2, 2],
        [0.5, 0.5, 1, 0.5, 0.5, 1]),
    3: ([1, 1, 1], [2, 1], [1.5, 0.5, 1], [0.5] * 6, [3], [1, 0.5, 0.5, 1]),
}


def _melody_part(rng, inst, key, spans, dyn, beat, bpb, lead_in):
    low, high = ROLE_RANGES['melody']
    scale = sorted(key.melodic_scale)
    pitches = [p for p in range(low, high + 1) if p % 12 in scale]
    idx = len(pitches) // 2
    end_of_music = spans[-1].end
    t = spans[0].start
    rest_p = rng.uniform(0.05, 0.2)
    while t < end_of_music - 1e-6:
        for length in _RHYTHMS[bpb][int(rng.integers(len(_RHYTHMS[bpb])))]:
            if t >= end_of_music - 1e-6:
                break
            span = next(s for s in spans if s.start - 1e-6 <= t < s.end)
            on_beat = abs((t - lead_in) / beat - round((t - lead_in) / beat)) < 1e-3
            tones = set(span.chord.pitch_classes)
            if on_beat or t == span.start:
                # Chord tone nearest the current position keeps strong beats consonant.
                candidates = [i for i, p in enumerate(pitches) if p % 12 in tones]
                if candidates:
                    idx = min(candidates, key=lambda i: abs(i - idx) + 0.1 * rng.random())
            else:
                idx = int(np.clip(idx + rng.choice([-2, -1, 1, 2], p=[0.15, 0.35, 0.35, 0.15]),
                                  0, len(pitches) - 1))
            pitch = pitches[idx]
            if key.mode == 'minor' and span.chord.root == (key.tonic + 7) % 12 and \
                    pitch % 12 == (key.tonic + 10) % 12:
                pitch += 1  # leading tone over the dominant
            dur = length * beat
            if rng.random() > rest_p:
                _add(inst, pitch, t, min(t + dur * 0.92, end_of_music), dyn.velocity(t, 4))
            t += dur


def _drum_part(rng, inst, start, end, beat, bpb, dyn):
    hat = int(rng.choice([CLOSED_HAT, RIDE]))
    eighths = rng.random() < 0.6
    kick_beats = {4: (0, 2), 3: (0,)}[bpb]
    snare_beats = {4: (1, 3), 3: (1, 2)}[bpb]
    n_beats = int(np.floor((end - start) / beat + 1e-6))
    for b in range(n_beats):
        t = start + b * beat
        pos = b % bpb
        if b % (4 * bpb) == 0:
            _add(inst, CRASH, t, t + 0.3, dyn.velocity(t, 10))
        if pos in kick_beats:
            _add(inst, KICK, t, t + 0.1, dyn.velocity(t, 10))
        if pos in snare_beats:
            _add(inst, SNARE, t, t + 0.1, dyn.velocity(t, 0))
        _add(inst, hat, t, t + 0.05, dyn.velocity(t, -12))
        if eighths and t + beat / 2 < end:
            _add(inst, hat if rng.random() < 0.9 else OPEN_HAT, t + beat / 2,
                 t + beat / 2 + 0.05, dyn.velocity(t + beat / 2, -20))
