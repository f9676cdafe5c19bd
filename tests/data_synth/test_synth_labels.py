"""Tests of the labels derived from composed pieces."""

import mir_eval
import numpy as np
import pretty_midi
import pytest

from mir_jax.data.synth import composer, labels


def _piece(i, duration=15.0):
    return composer.compose(np.random.default_rng([21, i]), duration)


def test_merge_onsets_hand_made():
    got = labels.merge_onsets([0.5, 0.0, 0.005, 0.012, 0.0121, 0.5, 0.509])
    # 0.005 joins 0.0; 0.012 starts a group (12 ms after 0.0) that 0.0121 joins.
    np.testing.assert_allclose(got, [0.0, 0.012, 0.5])


@pytest.mark.parametrize('i', range(8))
def test_onsets_are_all_note_starts_merged(i):
    piece = _piece(i)
    onsets = piece.labels.onsets
    starts = np.sort([n.start for inst in piece.midi.instruments for n in inst.notes])
    assert np.all(np.diff(onsets) > labels.ONSET_MERGE_SECONDS)
    # Every note start is covered by a label at most 10 ms earlier, and every label is a note start.
    idx = np.searchsorted(onsets, starts + 1e-9) - 1
    assert np.all(idx >= 0)
    assert np.all(starts - onsets[idx] <= labels.ONSET_MERGE_SECONDS + 1e-9)
    assert np.all(np.min(np.abs(onsets[:, None] - starts[None, :]), axis=1) < 1e-6)
    drums = [inst for inst in piece.midi.instruments if inst.is_drum]
    for inst in drums:
        for n in inst.notes:
            assert np.min(np.abs(onsets - n.start)) <= labels.ONSET_MERGE_SECONDS + 1e-9


@pytest.mark.parametrize('i', range(8))
def test_chord_segments_are_valid_harte_and_cover_the_clip(i):
    piece = _piece(i)
    lab = piece.labels
    mir_eval.util.validate_intervals(lab.chord_intervals)
    assert lab.chord_intervals[0, 0] == 0.0
    assert lab.chord_intervals[-1, 1] == pytest.approx(piece.duration)
    np.testing.assert_allclose(lab.chord_intervals[1:, 0], lab.chord_intervals[:-1, 1])
    assert lab.chord_labels[-1] == 'N'
    last_note = max(n.end for inst in piece.midi.instruments for n in inst.notes)
    assert lab.chord_intervals[-1, 0] >= last_note - 1e-6  # the tail is silent
    for full, mm in zip(lab.chord_labels, lab.chord_labels_majmin):
        mir_eval.chord.validate_chord_label(full)
        if full == 'N':
            assert mm == 'N'
            continue
        root, bitmap, _ = mir_eval.chord.encode(full)
        mm_root, mm_bitmap, mm_bass = mir_eval.chord.encode(mm)
        assert mm_root == root and mm_bass == 0
        assert mm.split(':')[1] in ('maj', 'min')
        # The reduction keeps the chord's third.
        assert mm_bitmap[3] == bitmap[3] and mm_bitmap[4] == bitmap[4]
    # mir_eval's majmin comparison agrees with our reduction wherever it scores.
    scores = mir_eval.chord.majmin(lab.chord_labels, lab.chord_labels_majmin)
    assert np.all((scores == 1) | (scores == -1))


def test_progressions_use_sevenths_inversions_secondary_and_borrowed_chords():
    qualities, inversions, non_diatonic = set(), 0, 0
    for i in range(40):
        piece = _piece(i, 20.0)
        scale = set(piece.key.scale)
        for span in piece.chords:
            qualities.add(span.chord.quality)
            inversions += span.chord.bass_interval != 0
            root, bitmap, _ = mir_eval.chord.encode(span.chord.harte)
            tones = {(root + k) % 12 for k in np.flatnonzero(bitmap)}
            non_diatonic += not tones <= scale
    assert {'maj', 'min', '7', 'maj7', 'min7', 'dim'} <= qualities
    assert inversions > 10 and non_diatonic > 10


@pytest.mark.parametrize('i', range(6))
def test_key_tags_and_sequence(i):
    piece = _piece(i)
    lab = piece.labels
    mir_eval.key.validate_key(lab.key)
    assert lab.key == piece.key.name
    tags = lab.tags
    assert set(tags) == set(labels.TAG_NAMES)
    assert lab.tag_vector().shape == (len(labels.TAG_NAMES),)
    programs = {inst.program for inst in piece.midi.instruments if not inst.is_drum}
    names = {'inst_' + pretty_midi.program_to_instrument_name(p).lower()
             .replace(' (', '_').replace(')', '').replace(' ', '_') for p in programs}
    assert {t for t, v in tags.items() if t.startswith('inst_') and v} == names
    assert tags['drums'] == int(any(inst.is_drum for inst in piece.midi.instruments))
    assert tags['mode_major'] + tags['mode_minor'] == 1
    assert tags[f'mode_{lab.key.split()[1]}'] == 1
    assert tags['tempo_slow'] + tags['tempo_medium'] + tags['tempo_fast'] == 1
    assert tags['tempo_slow'] == int(piece.tempo < 90)
    assert tags['density_low'] + tags['density_high'] == 1
    seq = lab.chord_sequence
    chords = [(l, iv) for l, iv in zip(lab.chord_labels, lab.chord_intervals) if l != 'N']
    assert [s[0] for s in seq] == [c[0] for c in chords]
    for (label, secs, beats), (_, (a, b)) in zip(seq, chords):
        assert secs == pytest.approx(b - a, abs=1e-5)
        assert beats * 60.0 / piece.tempo == pytest.approx(secs, abs=1e-3)
