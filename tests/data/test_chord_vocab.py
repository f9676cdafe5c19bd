"""Chord and key vocabularies, checked against mir_eval's comparison functions."""

import itertools

import mir_eval
import pytest

from mir_jax.data import vocab as V

ROOTS = ["C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B", "Cb", "E#"]
QUALITIES = [q for q in mir_eval.chord.QUALITIES if q]
ALL_LABELS = [f"{r}:{q}" for r, q in itertools.product(ROOTS, QUALITIES)] + [
    "C:maj/3", "A:min/b3", "G:7/5", "D:min7/b7", "E", "F#", "C:(1,3,5)", "C:(1,b3,5,b7)",
]


def test_sizes_and_layout():
    assert V.num_classes("majmin") == 25
    assert V.num_classes("sevenths") == 61
    mm = V.chord_vocabulary("majmin")
    assert mm[0] == "N" and mm[1] == "C:maj" and mm[12] == "B:maj"
    assert mm[13] == "C:min" and mm[24] == "B:min"
    sv = V.chord_vocabulary("sevenths")
    assert sv[25] == "C:7" and sv[37] == "C:maj7" and sv[49] == "C:min7" and sv[60] == "B:min7"


@pytest.mark.parametrize("vocab", ["majmin", "sevenths"])
def test_round_trip_every_class(vocab):
    for i in range(V.num_classes(vocab)):
        assert V.label_to_index(V.index_to_label(i, vocab), vocab) == i


@pytest.mark.parametrize(
    "vocab,compare", [("majmin", mir_eval.chord.majmin), ("sevenths", mir_eval.chord.sevenths)]
)
def test_reduction_agrees_with_mir_eval_inside_its_domain(vocab, compare):
    # mir_eval scores a label pair 1 when the estimate equals the reference
    # reduced to the vocabulary, and -1 when the reference is outside it.
    refs = ALL_LABELS + ["N"]
    ests = [V.index_to_label(V.label_to_index(r, vocab), vocab) for r in refs]
    scores = compare(refs, ests)
    in_domain = scores >= 0
    assert in_domain.sum() > 30
    bad = [(r, e) for r, e, s in zip(refs, ests, scores) if s == 0]
    assert not bad


@pytest.mark.parametrize(
    "label,majmin,sevenths",
    [
        ("N", "N", "N"),
        ("C:dim", "C:min", "C:min"),
        ("C:hdim7", "C:min", "C:min7"),
        ("C:dim7", "C:min", "C:min"),
        ("C:minmaj7", "C:min", "C:min"),
        ("C:aug", "C:maj", "C:maj"),
        ("C:sus4", "C:maj", "C:maj"),
        ("C:sus2", "C:maj", "C:maj"),
        ("C:5", "C:maj", "C:maj"),
        ("C:1", "C:maj", "C:maj"),
        ("G:(1,4,5,b7)", "G:maj", "G:7"),
        ("E:9", "E:maj", "E:7"),
        ("Bb:min9", "A#:min", "A#:min7"),
        ("D:maj6", "D:maj", "D:maj"),
        ("Cb:maj7/3", "B:maj", "B:maj7"),
    ],
)
def test_documented_mapping_outside_vocabulary(label, majmin, sevenths):
    assert V.index_to_label(V.label_to_index(label, "majmin"), "majmin") == majmin
    assert V.index_to_label(V.label_to_index(label, "sevenths"), "sevenths") == sevenths


def test_x_maps_to_ignore_index():
    assert V.label_to_index("X") == V.IGNORE_INDEX == -1
    assert V.index_to_label(V.IGNORE_INDEX) == "X"


@pytest.mark.parametrize("label", ["H:maj", "C:foo", "", "C:maj/q"])
def test_invalid_label_clear_error(label):
    with pytest.raises(V.VocabularyError, match="invalid chord label"):
        V.label_to_index(label)


def test_bad_vocab_and_index():
    with pytest.raises(V.VocabularyError, match="unknown chord vocabulary"):
        V.label_to_index("C:maj", "triads")
    with pytest.raises(V.VocabularyError, match="out of range"):
        V.index_to_label(25, "majmin")


def test_keys_match_mir_eval_semitones():
    for i in range(V.NUM_KEYS):
        key = V.index_to_key(i)
        tonic, mode = mir_eval.key.split_key_string(key)
        assert tonic == i % 12 and mode == ("minor" if i >= 12 else "major")
        assert V.key_to_index(key) == i
    assert V.key_to_index("Bb major") == 10
    assert V.key_to_index("Db minor") == 13
    # weighted score of a key with itself is 1 (mir_eval's reference)
    assert mir_eval.key.weighted_score("Bb major", V.index_to_key(V.key_to_index("Bb major"))) == 1.0
    with pytest.raises(V.VocabularyError):
        V.key_to_index("C other")
    with pytest.raises(V.VocabularyError):
        V.key_to_index("X")
