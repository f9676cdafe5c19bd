"""Chord and key vocabularies: label strings <-> class indices.

Chord labels are parsed with :func:`mir_eval.chord.encode` (Harte syntax) and
reduced to a small vocabulary by the *third* and *seventh* of the chord's
quality bitmap, so every valid Harte label lands in a class.

``majmin`` (25 classes)::

    0        N          (no chord)
    1..12    C:maj .. B:maj
    13..24   C:min .. B:min

``sevenths`` (61 classes)::

    0        N
    1..12    root:maj     13..24  root:min     25..36  root:7
    37..48   root:maj7    49..60  root:min7

Reduction rules (documented mapping of everything outside the vocabulary):

* a chord with a major third (semitone 4) is major: ``maj``, ``aug``,
  ``maj6``, ``9`` ... -> ``maj``;
* a chord with a minor third (3) and no major third is minor: ``min``,
  ``dim``, ``dim7``, ``hdim7``, ``min6`` ... -> ``min``;
* a chord with neither third (``sus2``, ``sus4``, power chord ``5``,
  ``1``) -> ``maj``;
* inversions (``/bass``) are ignored;
* ``sevenths`` only: a major-type chord with a minor seventh (10) -> ``7``,
  with a major seventh (11) -> ``maj7``; a minor-type chord with a minor
  seventh -> ``min7`` (so ``hdim7`` -> ``min7``); ``minmaj7`` and ``dim7``
  (whose "seventh" is a diminished seventh, semitone 9) -> ``min``;
* ``X`` (the annotator could not tell) -> :data:`IGNORE_INDEX` (``-1``), so a
  loss can mask those frames instead of learning them as ``N``.

Keys (24 classes): ``0..11`` = ``C major .. B major``, ``12..23`` =
``C minor .. B minor``; the key string is in mir_eval form (``'F# minor'``).
"""

from __future__ import annotations

import mir_eval.chord
import mir_eval.key

#: Class index for labels that carry no usable target (``X``).
IGNORE_INDEX = -1

#: Pitch-class names used when turning indices back into labels.
PITCH_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

_QUALITY_BLOCKS = {
    "majmin": ("maj", "min"),
    "sevenths": ("maj", "min", "7", "maj7", "min7"),
}

VOCABULARIES = tuple(_QUALITY_BLOCKS)


class VocabularyError(ValueError):
    """An unknown vocabulary name, an invalid label or an out-of-range index."""


def _check_vocab(vocab: str) -> tuple[str, ...]:
    try:
        return _QUALITY_BLOCKS[vocab]
    except KeyError:
        raise VocabularyError(
            f"unknown chord vocabulary {vocab!r}; expected one of {VOCABULARIES}"
        ) from None


def num_classes(vocab: str = "majmin") -> int:
    """Number of classes of a chord vocabulary, ``N`` included."""
    return 1 + 12 * len(_check_vocab(vocab))


def reduce_quality(bitmap, vocab: str = "majmin") -> str:
    """Reduce a 12-semitone quality bitmap (root at 0) to a vocabulary quality."""
    blocks = _check_vocab(vocab)
    major_third, minor_third = bool(bitmap[4]), bool(bitmap[3])
    is_minor = minor_third and not major_third
    if "7" in blocks:
        if bitmap[10]:
            return "min7" if is_minor else "7"
        if bitmap[11] and not is_minor:
            return "maj7"
    return "min" if is_minor else "maj"


def label_to_index(label: str, vocab: str = "majmin") -> int:
    """Class index of a Harte chord label (``'A:min7/b3'``) in ``vocab``.

    ``N`` -> 0, ``X`` -> :data:`IGNORE_INDEX`; other labels are reduced as the
    module docstring describes. Raises :class:`VocabularyError` for a label
    that ``mir_eval.chord`` cannot parse.
    """
    blocks = _check_vocab(vocab)
    label = label.strip()
    if label == "X":
        return IGNORE_INDEX
    try:
        root, bitmap, _ = mir_eval.chord.encode(label)
    except mir_eval.chord.InvalidChordException as exc:
        raise VocabularyError(f"invalid chord label {label!r}: {exc}") from None
    if root < 0:
        return 0
    quality = reduce_quality(bitmap, vocab)
    return 1 + 12 * blocks.index(quality) + int(root) % 12


def index_to_label(index: int, vocab: str = "majmin") -> str:
    """Harte label of a class index: ``0`` -> ``'N'``, ``1`` -> ``'C:maj'``, ..."""
    blocks = _check_vocab(vocab)
    index = int(index)
    if index == IGNORE_INDEX:
        return "X"
    if not 0 <= index < num_classes(vocab):
        raise VocabularyError(
            f"class index {index} out of range for vocabulary {vocab!r} "
            f"({num_classes(vocab)} classes)"
        )
    if index == 0:
        return "N"
    block, root = divmod(index - 1, 12)
    return f"{PITCH_NAMES[root]}:{blocks[block]}"


def chord_vocabulary(vocab: str = "majmin") -> list[str]:
    """All labels of ``vocab`` in class order."""
    return [index_to_label(i, vocab) for i in range(num_classes(vocab))]


NUM_KEYS = 24


def key_to_index(key: str) -> int:
    """Class index of a mir_eval key string (``'Bb major'`` -> 10).

    ``X`` and mode ``other`` have no class: they raise :class:`VocabularyError`.
    """
    try:
        mir_eval.key.validate_key(key)
    except ValueError as exc:
        raise VocabularyError(f"invalid key {key!r}: {exc}") from None
    tonic, mode = mir_eval.key.split_key_string(key)
    if tonic is None or mode not in ("major", "minor"):
        raise VocabularyError(f"key {key!r} has no major/minor class")
    return tonic + (12 if mode == "minor" else 0)


def index_to_key(index: int) -> str:
    """mir_eval key string of a class index (``21`` -> ``'A minor'``)."""
    index = int(index)
    if not 0 <= index < NUM_KEYS:
        raise VocabularyError(f"key index {index} out of range [0, {NUM_KEYS})")
    mode, tonic = divmod(index, 12)
    return f"{PITCH_NAMES[tonic]} {'minor' if mode else 'major'}"
