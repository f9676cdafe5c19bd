"""Tests for mir_jax.audio.io: formats, downmix, resampling and every error case."""

import os

import librosa
import numpy as np
import pytest
import soundfile as sf

from mir_jax.audio import io as audio_io
from mir_jax.audio.io import AudioError, load_audio, save_wav

SR = 22050


def _tone(sr=SR, seconds=1.0, freq=440.0, amp=0.5):
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _can_write(fmt, subtype):
    return fmt in sf.available_formats() and subtype in sf.available_subtypes(fmt)


FORMATS = [
    ("wav", "WAV", "PCM_16", 1e-3),
    ("flac", "FLAC", "PCM_16", 1e-3),
    ("ogg", "OGG", "VORBIS", 0.05),
    ("mp3", "MP3", "MPEG_LAYER_III", 0.05),
]


@pytest.mark.parametrize("ext,fmt,subtype,tol", FORMATS)
def test_formats_load_mono_float32(tmp_path, ext, fmt, subtype, tol):
    if not _can_write(fmt, subtype):
        pytest.skip(f"libsndfile {sf.__libsndfile_version__} cannot write {fmt}/{subtype}")
    y = _tone()
    path = tmp_path / f"tone.{ext}"
    sf.write(path, y, SR, format=fmt, subtype=subtype)
    out = load_audio(path, SR)
    assert out.dtype == np.float32 and out.ndim == 1
    # Lossy codecs add encoder delay/padding; compare the tone's level and pitch.
    assert abs(len(out) - len(y)) < 0.1 * SR
    assert abs(np.sqrt(np.mean(out**2)) - np.sqrt(np.mean(y**2))) < tol + 0.02
    spectrum = np.abs(np.fft.rfft(out[: SR // 2] * np.hanning(SR // 2)))
    peak_hz = np.argmax(spectrum) * SR / (SR // 2)
    assert abs(peak_hz - 440.0) < 5.0
    if ext in ("wav", "flac"):
        np.testing.assert_allclose(out, y, atol=tol)


def test_downmix_is_channel_mean(tmp_path):
    left, right = _tone(freq=440.0), _tone(freq=660.0, amp=0.25)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), SR, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path, SR), (left + right) / 2, atol=1e-6)
    stereo = load_audio(path, SR, mono=False)
    assert stereo.shape == (2, len(left))
    np.testing.assert_allclose(stereo[1], right, atol=1e-6)


def test_resample_matches_librosa(tmp_path):
    y = _tone(sr=44100)
    path = tmp_path / "hi.wav"
    sf.write(path, y, 44100, subtype="FLOAT")
    out = load_audio(path, SR)
    ref = librosa.resample(y, orig_sr=44100, target_sr=SR)
    assert out.shape == ref.shape == (SR,)
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_silence_is_valid(tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(SR, np.float32), SR)
    out = load_audio(path, SR)
    assert out.shape == (SR,) and not np.any(out)


def _assert_names_file(excinfo, path, *words):
    message = str(excinfo.value)
    assert os.fspath(path) in message
    for word in words:
        assert word in message.lower(), message


def test_missing_file(tmp_path):
    path = tmp_path / "nope.wav"
    with pytest.raises(AudioError) as excinfo:
        load_audio(path, SR)
    _assert_names_file(excinfo, path, "not found")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError) as excinfo:
        load_audio(path, SR)
    _assert_names_file(excinfo, path, "empty")


def test_directory_is_not_audio(tmp_path):
    with pytest.raises(AudioError) as excinfo:
        load_audio(tmp_path, SR)
    _assert_names_file(excinfo, tmp_path, "not a regular file")


@pytest.mark.parametrize("ext", ["wav", "mp3", "ogg"])
def test_garbage_is_unreadable(tmp_path, ext):
    path = tmp_path / f"garbage.{ext}"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(AudioError) as excinfo:
        load_audio(path, SR)
    _assert_names_file(excinfo, path, "unreadable")


def test_truncated_header_is_unreadable(tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, _tone(), SR)
    path = tmp_path / "cut.wav"
    path.write_bytes(good.read_bytes()[:20])
    with pytest.raises(AudioError) as excinfo:
        load_audio(path, SR)
    _assert_names_file(excinfo, path)


def test_zero_length(tmp_path):
    path = tmp_path / "zero.wav"
    sf.write(path, np.zeros(0, np.float32), SR)
    assert path.stat().st_size > 0  # a valid header, no samples
    with pytest.raises(AudioError) as excinfo:
        load_audio(path, SR)
    _assert_names_file(excinfo, path, "zero length")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples(tmp_path, bad):
    y = _tone()
    y[100] = bad
    path = tmp_path / "nan.wav"
    sf.write(path, y, SR, subtype="FLOAT")
    with pytest.raises(AudioError) as excinfo:
        load_audio(path, SR)
    _assert_names_file(excinfo, path, "nan or infinite")


def test_unsupported_file_sample_rate(tmp_path):
    path = tmp_path / "slow.wav"
    sf.write(path, np.zeros(500, np.float32), 500)
    with pytest.raises(AudioError) as excinfo:
        load_audio(path, SR)
    _assert_names_file(excinfo, path, "sample rate", "500")


def test_bad_target_sample_rate(tmp_path):
    path = tmp_path / "ok.wav"
    sf.write(path, _tone(), SR)
    for bad in (0, -22050, 22050.5):
        with pytest.raises(AudioError) as excinfo:
            load_audio(path, bad)
        _assert_names_file(excinfo, path, "target sample rate")


def test_too_many_channels(tmp_path):
    channels = audio_io.MAX_CHANNELS + 1
    path = tmp_path / "many.wav"
    sf.write(path, np.zeros((100, channels), np.float32), SR, subtype="FLOAT")
    with pytest.raises(AudioError) as excinfo:
        load_audio(path, SR)
    _assert_names_file(excinfo, path, f"{channels} channels")


def test_save_wav_roundtrip_and_atomic(tmp_path, monkeypatch):
    y = _tone()
    path = tmp_path / "out.wav"
    save_wav(path, y, SR, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(path, SR), y)

    # A write that dies midway leaves the old file intact and no temp file.
    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sf, "write", boom)
    with pytest.raises(KeyboardInterrupt):
        save_wav(path, np.zeros_like(y), SR)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]
    np.testing.assert_array_equal(load_audio(path, SR), y)


def test_save_wav_rejects_clipping_and_nan(tmp_path):
    path = tmp_path / "clip.wav"
    with pytest.raises(AudioError) as excinfo:
        save_wav(path, np.full(10, 1.5, np.float32), SR)
    _assert_names_file(excinfo, path, "clip")
    with pytest.raises(AudioError):
        save_wav(path, np.full(10, np.nan, np.float32), SR)
    assert not path.exists()
