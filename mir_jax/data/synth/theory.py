"""Music theory tables for the synthetic composer: pitch names, keys, chords, Harte labels.

Pitch classes are integers 0..11 with C = 0. Names use the common pop spelling
(``Eb``, ``F#``, ``Ab``, ``Bb``), which both Harte chord syntax and ``mir_eval`` keys accept.
"""

from __future__ import annotations

import dataclasses

PITCH_NAMES = ('C', 'C#', 'D', 'Eb', 'E', 'F', 'F#', 'G', 'Ab', 'A', 'Bb', 'B')

MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
# Harmonic minor: the raised seventh gives the minor key its dominant (V, vii°).
HARMONIC_MINOR_SCALE = (0, 2, 3, 5, 7, 8, 11)
NATURAL_MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)

# Chord qualities as semitone intervals above the root, named in Harte shorthand.
QUALITIES: dict[str, tuple[int, ...]] = {
    'maj': (0, 4, 7),
    'min': (0, 3, 7),
    'dim': (0, 3, 6),
    '7': (0, 4, 7, 10),
    'maj7': (0, 4, 7, 11),
    'min7': (0, 3, 7, 10),
    'hdim7': (0, 3, 6, 10),
    'dim7': (0, 3, 6, 9),
}

# Reduction to the 25-class major/minor vocabulary: the third decides. Diminished
# chords have a minor third and map to ``min`` (the usual choice for majmin targets).
MAJMIN_OF_QUALITY = {
    'maj': 'maj', '7': 'maj', 'maj7': 'maj',
    'min': 'min', 'min7': 'min', 'dim': 'min', 'hdim7': 'min', 'dim7': 'min',
}

# Harte interval names of chord tones, used for inversions written as ``C:maj/3``.
_HARTE_DEGREE = {0: '1', 3: 'b3', 4: '3', 6: 'b5', 7: '5', 9: 'bb7', 10: 'b7', 11: '7'}


@dataclasses.dataclass(frozen=True)
class Key:
    """A musical key: tonic pitch class and mode ('major' or 'minor')."""

    tonic: int
    mode: str

    def __post_init__(self):
        if not 0 <= self.tonic < 12:
            raise ValueError(f'tonic must be a pitch class 0..11, got {self.tonic}')
        if self.mode not in ('major', 'minor'):
            raise ValueError(f"mode must be 'major' or 'minor', got {self.mode!r}")

    @property
    def name(self) -> str:
        """The key in ``mir_eval`` form, e.g. ``'F# minor'``."""
        return f'{PITCH_NAMES[self.tonic]} {self.mode}'

    @property
    def scale(self) -> tuple[int, ...]:
        """Scale pitch classes (harmonic minor in minor keys), tonic first."""
        steps = MAJOR_SCALE if self.mode == 'major' else HARMONIC_MINOR_SCALE
        return tuple((self.tonic + s) % 12 for s in steps)

    @property
    def melodic_scale(self) -> tuple[int, ...]:
        """Scale for melodies: natural minor in minor keys (avoids the augmented second)."""
        steps = MAJOR_SCALE if self.mode == 'major' else NATURAL_MINOR_SCALE
        return tuple((self.tonic + s) % 12 for s in steps)


ALL_KEYS = tuple(Key(t, m) for m in ('major', 'minor') for t in range(12))


@dataclasses.dataclass(frozen=True)
class Chord:
    """A chord: root pitch class, Harte quality and the chord tone in the bass (0 = root)."""

    root: int
    quality: str
    bass_interval: int = 0

    def __post_init__(self):
        if self.quality not in QUALITIES:
            raise ValueError(f'unknown chord quality {self.quality!r}')
        if self.bass_interval not in QUALITIES[self.quality]:
            raise ValueError(f'bass interval {self.bass_interval} is not a tone of {self.quality}')

    @property
    def intervals(self) -> tuple[int, ...]:
        return QUALITIES[self.quality]

    @property
    def pitch_classes(self) -> tuple[int, ...]:
        return tuple((self.root + i) % 12 for i in self.intervals)

    @property
    def bass_pc(self) -> int:
        return (self.root + self.bass_interval) % 12

    @property
    def harte(self) -> str:
        """Full Harte label with the inversion as a bass degree, e.g. ``G:7/b7``."""
        label = f'{PITCH_NAMES[self.root]}:{self.quality}'
        if self.bass_interval:
            label += '/' + _HARTE_DEGREE[self.bass_interval]
        return label

    @property
    def majmin(self) -> str:
        """Reduction to the 25-class vocabulary, e.g. ``G:maj`` (no inversion)."""
        return f'{PITCH_NAMES[self.root]}:{MAJMIN_OF_QUALITY[self.quality]}'

    def root_position(self) -> 'Chord':
        return Chord(self.root, self.quality, 0)
