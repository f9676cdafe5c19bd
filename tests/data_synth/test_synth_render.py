"""Tests that rendered audio agrees with the labels (onsets, chords, key) and is deterministic."""

import librosa
import mir_eval
import numpy as np
import pytest
import scipy.signal

from mir_jax.data.synth import composer, rendering

SR = 22050


def _onset_distances(y, onsets, sr=SR):
    """Distance from each labelled onset to the nearest clear peak of librosa's onset strength."""
    hop = 64
    env = librosa.onset.onset_strength(y=y, sr=sr, hop_length=hop, n_fft=512)
    times = librosa.times_like(env, sr=sr, hop_length=hop)
    peaks, _ = scipy.signal.find_peaks(env)
    med = np.median(env)
    thr = med + 2 * np.median(np.abs(env - med))
    peak_times = times[peaks[env[peaks] > thr]]
    return np.array([np.min(np.abs(peak_times - o)) for o in onsets])


@pytest.mark.parametrize('i', range(6))
def test_numpy_render_every_onset_has_a_rise_within_30ms(i):
    piece = composer.compose(np.random.default_rng([31, i]), 8.0)
    y = rendering.render(piece, SR, renderer='numpy', apply_effects=False)
    d = _onset_distances(y, piece.labels.onsets)
    assert np.all(d <= 0.030), d.max()


def test_numpy_render_chroma_peaks_on_chord_tones_and_key_tonic():
    segments = hits = 0
    for i in range(6):
        piece = composer.compose(np.random.default_rng([37, i]), 8.0)
        y = rendering.render(piece, SR, renderer='numpy', apply_effects=False)
        chroma = librosa.feature.chroma_cqt(y=y, sr=SR, hop_length=512)
        t = librosa.times_like(chroma, sr=SR, hop_length=512)
        for (a, b), label in zip(piece.labels.chord_intervals, piece.labels.chord_labels):
            if label == 'N' or b - a < 0.4:
                continue
            root, bitmap, _ = mir_eval.chord.encode(label)
            tones = {(root + k) % 12 for k in np.flatnonzero(bitmap)}
            mean = chroma[:, (t >= a + 0.05) & (t < b - 0.05)].mean(axis=1)
            segments += 1
            hits += int(np.argmax(mean) in tones)
        mean = chroma.mean(axis=1)
        tonic = mir_eval.key.KEY_TO_SEMITONE[piece.labels.key.split()[0].lower()]
        assert np.sum(mean > mean[tonic]) <= 1  # the tonic is the first or second pitch class
    assert segments >= 15 and hits == segments


def test_render_is_deterministic_and_shaped():
    piece = composer.compose(np.random.default_rng([41, 0]), 3.0)
    a = rendering.render(piece, 16000, renderer='numpy')
    b = rendering.render(piece, 16000, renderer='numpy')
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and a.shape == (48000,)
    assert 0.05 < np.max(np.abs(a)) <= 1.0
    dry = rendering.render(piece, 16000, renderer='numpy', apply_effects=False)
    assert np.max(np.abs(dry)) == pytest.approx(10 ** (-1 / 20), rel=1e-4)
    assert not np.allclose(dry / np.max(np.abs(dry)), a / np.max(np.abs(a)), atol=1e-3)
    with pytest.raises(ValueError, match='renderer'):
        rendering.render(piece, 16000, renderer='fluidsynth')


def test_soundfont_render_matches_labels():
    piece = composer.compose(np.random.default_rng([43, 2]), 5.0)
    y = rendering.render(piece, SR, renderer='soundfont', apply_effects=False)
    assert y.shape == (5 * SR,) and y.dtype == np.float32
    again = rendering.render(piece, SR, renderer='soundfont', apply_effects=False)
    np.testing.assert_array_equal(y, again)
    d = _onset_distances(y, piece.labels.onsets)
    # SoundFont strings and pads attack slowly; most onsets still show within 30 ms.
    assert np.mean(d <= 0.030) >= 0.85 and np.median(d) <= 0.02
    # Silence before the first note (up to the SoundFont's attack) and sound after it.
    first = piece.labels.onsets[0]
    if first > 0.05:
        assert np.max(np.abs(y[: int((first - 0.01) * SR)])) < 1e-3
    assert np.sqrt(np.mean(y[int(first * SR):] ** 2)) > 0.01


def test_bad_soundfont_is_reported(tmp_path):
    bad = tmp_path / 'bad.sf2'
    bad.write_bytes(b'not a soundfont')
    piece = composer.compose(np.random.default_rng(0), 2.0)
    with pytest.raises(ValueError, match='bad.sf2'):
        rendering.render(piece, SR, soundfont=str(bad))
