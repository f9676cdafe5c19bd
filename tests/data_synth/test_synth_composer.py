"""Tests of the synthetic composer: keys, harmony, voicing, ranges, determinism."""

import io

import mir_eval
import numpy as np
import pretty_midi
import pytest

from mir_jax.data.synth import composer


def _piece(seed, i=0, duration=12.0):
    return composer.compose(np.random.default_rng([seed, i]), duration)


def _midi_bytes(pm):
    buf = io.BytesIO()
    pm.write(buf)
    return buf.getvalue()


def _tones(label):
    root, bitmap, bass = mir_eval.chord.encode(label)
    return {(root + k) % 12 for k in np.flatnonzero(bitmap)}, (root + bass) % 12


def test_all_24_keys_occur():
    keys = {composer.compose(np.random.default_rng([5, i]), 3.0).key.name for i in range(240)}
    assert len(keys) == 24
    for k in keys:
        mir_eval.key.validate_key(k)


@pytest.mark.parametrize('i', range(20))
def test_tonic_is_the_most_common_pitch_class(i):
    piece = _piece(11, i, 20.0)
    hist = np.zeros(12)
    for inst in piece.midi.instruments:
        if not inst.is_drum:
            for n in inst.notes:
                hist[n.pitch % 12] += n.end - n.start
    tonic = mir_eval.key.KEY_TO_SEMITONE[piece.labels.key.split()[0].lower()]
    assert np.argmax(hist) == tonic


@pytest.mark.parametrize('i', range(12))
def test_chord_instruments_play_exactly_the_labelled_chord(i):
    piece = _piece(7, i)
    comp = next(inst for inst in piece.midi.instruments if inst.name == 'comp')
    bass = next((inst for inst in piece.midi.instruments if inst.name == 'bass'), None)
    for (start, end), label in zip(piece.labels.chord_intervals, piece.labels.chord_labels):
        inside = [n for n in comp.notes if start - 1e-6 <= n.start < end - 1e-6]
        if label == 'N':
            assert not inside
            continue
        tones, bass_pc = _tones(label)
        assert {n.pitch % 12 for n in inside} == tones, label
        if bass is not None:
            first = [n for n in bass.notes if abs(n.start - start) < 1e-6]
            assert first and first[0].pitch % 12 == bass_pc, label
            lowest_comp = min(n.pitch for n in inside)
            assert all(n.pitch < lowest_comp for n in bass.notes if start <= n.start < end)
        else:
            assert '/' not in label  # inversions only when a bass part plays them


def test_melody_stays_in_the_scale():
    for i in range(15):
        piece = _piece(13, i)
        mel = next((inst for inst in piece.midi.instruments if inst.name == 'melody'), None)
        if mel is None:
            continue
        tonic = piece.key.tonic
        # Natural minor plus the raised leading tone; major scale in major.
        steps = {0, 2, 4, 5, 7, 9, 11} if piece.key.mode == 'major' else {0, 2, 3, 5, 7, 8, 10, 11}
        assert {(n.pitch - tonic) % 12 for n in mel.notes} <= steps


def test_tempo_meter_instruments_and_timing():
    seen_programs = set()
    for i in range(30):
        piece = _piece(17, i, 10.0)
        assert 60 <= piece.tempo <= 180
        _, tempi = piece.midi.get_tempo_changes()
        assert tempi[0] == pytest.approx(piece.tempo, rel=1e-3)
        ts = piece.midi.time_signature_changes[0]
        assert (ts.numerator, ts.denominator) in {(4, 4), (3, 4)}
        pitched = [inst for inst in piece.midi.instruments if not inst.is_drum]
        assert 1 <= len(pitched) <= 4
        assert len({inst.program for inst in pitched}) == len(pitched)
        seen_programs |= {inst.program for inst in pitched}
        for inst in piece.midi.instruments:
            for n in inst.notes:
                assert 0 <= n.start < n.end <= piece.duration - composer.TAIL_SECONDS + 1e-6
                assert 1 <= n.velocity <= 127
    assert len({pretty_midi.program_to_instrument_class(p) for p in seen_programs}) >= 6


def test_same_seed_same_piece_and_different_seeds_differ():
    a, b, c = _piece(3, 1), _piece(3, 1), _piece(3, 2)
    assert _midi_bytes(a.midi) == _midi_bytes(b.midi)
    assert a.labels.chord_labels == b.labels.chord_labels
    np.testing.assert_array_equal(a.labels.onsets, b.labels.onsets)
    assert _midi_bytes(a.midi) != _midi_bytes(c.midi)


def test_short_and_invalid_durations():
    piece = composer.compose(np.random.default_rng(0), 2.0)
    assert piece.labels.chord_intervals[-1, 1] == pytest.approx(2.0)
    with pytest.raises(ValueError, match='duration'):
        composer.compose(np.random.default_rng(0), 1.0)
