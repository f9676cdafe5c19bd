"""Tests for mir_jax.audio.features against librosa and hand-made references."""

import json

import librosa
import numpy as np
import pytest

from mir_jax.audio.features import (
    FeatureConfig,
    adaptive_whitening,
    compute_features,
    frame_times,
    local_contrast_normalization,
    num_frames,
)

SR = 22050


@pytest.fixture(scope="module")
def signal():
    rng = np.random.default_rng(1)
    t = np.arange(int(1.5 * SR)) / SR
    y = 0.4 * np.sin(2 * np.pi * 220 * t) * np.exp(-2 * t) + 0.05 * rng.standard_normal(t.size)
    return y.astype(np.float32)


# --- config -----------------------------------------------------------------


def test_derived_quantities():
    cfg = FeatureConfig()
    assert cfg.frame_rate == pytest.approx(50.0)
    assert (cfg.num_bins, cfg.num_channels) == (80, 1)
    assert FeatureConfig(kind="stft", n_fft=1024).num_bins == 513
    assert FeatureConfig(kind="cqt", n_bins=60, hop_length=512).num_bins == 60
    assert FeatureConfig(kind="chroma").num_bins == 12
    assert FeatureConfig(n_ffts=(1024, 2048, 4096)).num_channels == 3


def test_from_dict_roundtrip_through_json():
    cfg = FeatureConfig(kind="mel", n_ffts=(1024, 2048), fmax=8000.0, log="log1p", lcn_size=(5, 3))
    again = FeatureConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and hash(again) == hash(cfg)


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match="n_mel_bands") as excinfo:
        FeatureConfig.from_dict({"n_mel_bands": 40, "kind": "mel", "hopsize": 3})
    assert "hopsize" in str(excinfo.value)


@pytest.mark.parametrize(
    "kwargs,key",
    [
        ({"kind": "mfcc"}, "kind"),
        ({"log": "ln"}, "log"),
        ({"hop_length": 0}, "hop_length"),
        ({"fmax": 20000.0}, "fmax"),
        ({"kind": "stft", "n_ffts": (1024, 2048)}, "n_ffts"),
        ({"kind": "cqt", "n_bins": 200}, "n_bins"),
        ({"top_db": -3.0}, "top_db"),
        ({"n_ffts": 2048}, "n_ffts"),
    ],
)
def test_invalid_config_names_the_key(kwargs, key):
    with pytest.raises(ValueError, match=f"'{key}'"):
        FeatureConfig(**kwargs)


# --- features against librosa ------------------------------------------------


def _lib_stft(y, n_fft, hop):
    return np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop, window="hann", center=True, pad_mode="constant"))


def test_mel_db_matches_librosa(signal):
    cfg = FeatureConfig(kind="mel", n_mels=40, fmin=30.0, fmax=8000.0, hop_length=441)
    feats = compute_features(signal, cfg)
    mel = librosa.feature.melspectrogram(
        y=signal, sr=SR, n_fft=2048, hop_length=441, n_mels=40, fmin=30.0, fmax=8000.0,
        center=True, pad_mode="constant", power=2.0,
    )
    ref = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=80.0).T
    assert feats.shape == (num_frames(len(signal), cfg), 40, 1) == (ref.shape[0], 40, 1)
    assert feats.dtype == np.float32
    np.testing.assert_allclose(feats[..., 0], ref, atol=1e-3)


def test_stft_db_matches_librosa(signal):
    cfg = FeatureConfig(kind="stft", n_fft=1024, hop_length=256, top_db=None)
    feats = compute_features(signal, cfg)
    ref = librosa.amplitude_to_db(_lib_stft(signal, 1024, 256), ref=1.0, amin=1e-5, top_db=None).T
    np.testing.assert_allclose(feats[..., 0], ref, atol=1e-3)


def test_linear_and_log1p_magnitudes(signal):
    mag = _lib_stft(signal, 2048, 441).T
    lin = compute_features(signal, FeatureConfig(kind="stft", log="none"))
    np.testing.assert_allclose(lin[..., 0], mag, rtol=1e-5, atol=1e-6)
    log = compute_features(signal, FeatureConfig(kind="stft", log="log1p", log1p_scale=100.0))
    np.testing.assert_allclose(log[..., 0], np.log1p(100.0 * mag), rtol=1e-5, atol=1e-5)


def test_cqt_matches_librosa(signal):
    cfg = FeatureConfig(kind="cqt", hop_length=512, fmin=55.0, n_bins=48, bins_per_octave=12, log="none")
    feats = compute_features(signal, cfg)
    ref = np.abs(
        librosa.cqt(signal, sr=SR, hop_length=512, fmin=55.0, n_bins=48, bins_per_octave=12, pad_mode="constant")
    ).T
    assert feats.shape == (1 + len(signal) // 512, 48, 1)
    np.testing.assert_allclose(feats[..., 0], ref, rtol=1e-4, atol=1e-6)
    # The 220 Hz partial lands in the bin 2 octaves above 55 Hz.
    assert np.argmax(feats[:10, :, 0].mean(axis=0)) == 24


def test_chroma_matches_librosa(signal):
    feats = compute_features(signal, FeatureConfig(kind="chroma", log="none"))
    power = _lib_stft(signal, 2048, 441) ** 2
    ref = librosa.feature.chroma_stft(S=power, sr=SR, n_fft=2048, tuning=0.0).T
    np.testing.assert_allclose(feats[..., 0], ref, rtol=1e-4, atol=1e-6)
    # 220 Hz is an A: pitch class 9 when C is 0.
    assert np.argmax(feats[:10, :, 0].mean(axis=0)) == 9


def test_several_frame_sizes_stack_as_channels(signal):
    cfg = FeatureConfig(n_ffts=(1024, 2048, 4096), n_mels=40, log="none")
    feats = compute_features(signal, cfg)
    assert feats.shape == (1 + len(signal) // 441, 40, 3)
    for channel, n_fft in enumerate((1024, 2048, 4096)):
        ref = librosa.feature.melspectrogram(
            y=signal, sr=SR, n_fft=n_fft, hop_length=441, n_mels=40, fmin=27.5, center=True, pad_mode="constant"
        ).T
        np.testing.assert_allclose(feats[..., channel], ref, rtol=1e-4, atol=1e-7)


def test_frames_are_centred_at_k_times_hop():
    cfg = FeatureConfig(kind="stft", n_fft=1024, hop_length=441, log="none")
    y = np.zeros(SR, np.float32)
    click_frame = 17
    y[click_frame * 441] = 1.0
    feats = compute_features(y, cfg)
    energy = feats[..., 0].sum(axis=1)
    assert np.argmax(energy) == click_frame
    times = frame_times(len(feats), cfg)
    assert times[click_frame] == pytest.approx(click_frame * 441 / SR)
    assert len(feats) == 1 + SR // 441


def test_silence_gives_finite_features():
    for kind in ("stft", "mel", "chroma"):
        feats = compute_features(np.zeros(SR // 2, np.float32), FeatureConfig(kind=kind, whitening=True, lcn=True))
        assert np.all(np.isfinite(feats)), kind


# --- ablation switches -------------------------------------------------------


def _whitening_reference(x, frame_rate, memory_s, floor):
    decay = 10 ** (-3 / (memory_s * frame_rate))
    out = np.zeros_like(x, dtype=np.float64)
    for b in range(x.shape[1]):
        peak = 0.0
        for t in range(x.shape[0]):
            peak = max(x[t, b], floor, decay * peak if t else floor)
            out[t, b] = x[t, b] / peak
    return out


def test_adaptive_whitening_against_reference_and_levels():
    rng = np.random.default_rng(2)
    x = rng.random((120, 6)).astype(np.float32) * np.array([1e-3, 1e-2, 0.1, 1.0, 10.0, 1e-6], np.float32)
    out = adaptive_whitening(x, frame_rate=50.0, memory_s=0.5, floor=1e-4)
    np.testing.assert_allclose(out, _whitening_reference(x, 50.0, 0.5, 1e-4), rtol=1e-5)
    # Bands 4 decades apart (all above the floor) end up on the same scale.
    levels = out[60:, :5].mean(axis=0)
    assert levels.max() / levels.min() < 1.5
    assert out[:, 5].max() < 0.02  # below the floor: not blown up


def test_whitening_switch_changes_features(signal):
    plain = compute_features(signal, FeatureConfig(log="none"))
    white = compute_features(signal, FeatureConfig(log="none", whitening=True))
    assert white.max() <= 1.0 + 1e-6 and plain.max() > 1.0


def _lcn_reference(x, size):
    pt, pf = size[0] // 2, size[1] // 2
    # scipy's 'reflect' repeats the edge sample, numpy's 'symmetric' does too.
    padded = np.pad(x.astype(np.float64), ((pt, size[0] - 1 - pt), (pf, size[1] - 1 - pf)), mode="symmetric")
    mean = np.zeros(x.shape)
    std = np.zeros(x.shape)
    for t in range(x.shape[0]):
        for f in range(x.shape[1]):
            window = padded[t : t + size[0], f : f + size[1]]
            mean[t, f] = window.mean()
            std[t, f] = window.std()
    return (x - mean) / np.maximum(std, std.mean())


def test_local_contrast_normalization_against_reference():
    x = np.random.default_rng(3).standard_normal((20, 12)).astype(np.float32) * 3 + 7
    out = local_contrast_normalization(x, size=(5, 3))
    np.testing.assert_allclose(out, _lcn_reference(x, (5, 3)), rtol=1e-4, atol=1e-4)
