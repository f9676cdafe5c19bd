"""Tests for mir_jax.audio.cache: content+config keys, atomic writes, Standardizer."""

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from mir_jax.audio import cache as cache_mod
from mir_jax.audio.cache import Standardizer, cache_key, cached_features
from mir_jax.audio.features import FeatureConfig, compute_features
from mir_jax.audio.io import AudioError, load_audio

SR = 22050
CFG = FeatureConfig(n_mels=20, n_fft=1024)


def _write_tone(path, freq=440.0, seconds=0.5):
    t = np.arange(int(SR * seconds)) / SR
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), SR, subtype="FLOAT")
    return path


@pytest.fixture
def counting(monkeypatch):
    """Counts calls to compute_features made by the cache."""
    calls = []

    def wrapped(y, cfg):
        calls.append(cfg)
        return compute_features(y, cfg)

    monkeypatch.setattr(cache_mod, "compute_features", wrapped)
    return calls


def _npy_files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_cached_equals_direct_and_is_reused(tmp_path, counting):
    audio = _write_tone(tmp_path / "a.wav")
    cache_dir = tmp_path / "cache"
    first = cached_features(audio, CFG, cache_dir)
    np.testing.assert_array_equal(first, compute_features(load_audio(audio, SR), CFG))
    second = cached_features(audio, CFG, cache_dir)
    np.testing.assert_array_equal(first, second)
    assert len(counting) == 1
    assert len(_npy_files(cache_dir)) == 1


def test_key_follows_content_not_path(tmp_path, counting):
    a = _write_tone(tmp_path / "a.wav")
    b = tmp_path / "renamed.wav"
    shutil.copy(a, b)
    c = _write_tone(tmp_path / "c.wav", freq=660.0)
    assert cache_key(a, CFG) == cache_key(b, CFG) != cache_key(c, CFG)
    cache_dir = tmp_path / "cache"
    cached_features(a, CFG, cache_dir)
    cached_features(b, CFG, cache_dir)
    assert len(counting) == 1  # the copy hit the cache


def test_any_config_change_gives_a_new_entry(tmp_path):
    audio = _write_tone(tmp_path / "a.wav")
    variants = [CFG, FeatureConfig(n_mels=20, n_fft=1024, whitening=True), FeatureConfig(n_mels=20, n_fft=1024, log="log1p")]
    keys = {cache_key(audio, cfg) for cfg in variants}
    assert len(keys) == 3
    cache_dir = tmp_path / "cache"
    outs = [cached_features(audio, cfg, cache_dir) for cfg in variants]
    assert len(_npy_files(cache_dir)) == 3
    assert not np.allclose(outs[0], outs[1])


def test_edited_file_is_not_served_stale(tmp_path):
    audio = _write_tone(tmp_path / "a.wav", freq=440.0)
    cache_dir = tmp_path / "cache"
    before = cached_features(audio, CFG, cache_dir)
    _write_tone(audio, freq=1760.0)  # same path, new content
    after = cached_features(audio, CFG, cache_dir)
    np.testing.assert_array_equal(after, compute_features(load_audio(audio, SR), CFG))
    assert not np.allclose(before, after)


def test_killed_write_leaves_no_file(tmp_path, monkeypatch):
    audio = _write_tone(tmp_path / "a.wav")
    cache_dir = tmp_path / "cache"

    def dies_midway(handle, array):
        handle.write(b"\x93NUMPY half")
        raise KeyboardInterrupt  # e.g. the run is killed

    monkeypatch.setattr(np, "save", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        cached_features(audio, CFG, cache_dir)
    assert _npy_files(cache_dir) == []
    monkeypatch.undo()
    out = cached_features(audio, CFG, cache_dir)
    assert out.shape == (1 + int(0.5 * SR) // CFG.hop_length, 20, 1)
    assert len(_npy_files(cache_dir)) == 1


def test_reader_threads_load_cached_entries_one_at_a_time(tmp_path, monkeypatch):
    # np.load builds an AST for the .npy header; CPython 3.11 raced on that across
    # threads (python/cpython#106905), so the cache serialises its reads.
    import threading
    import time
    paths = [_write_tone(tmp_path / f"{i}.wav", 220.0 * (i + 1)) for i in range(4)]
    for p in paths:
        cached_features(p, CFG, tmp_path / "c")
    inside, most, guard = [0], [0], threading.Lock()
    real_load = np.load

    def slow_load(*args, **kwargs):
        with guard:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.05)
        try:
            return real_load(*args, **kwargs)
        finally:
            with guard:
                inside[0] -= 1

    monkeypatch.setattr(cache_mod.np, "load", slow_load)
    results = [None] * len(paths)

    def read(i):
        results[i] = cached_features(paths[i], CFG, tmp_path / "c")

    threads = [threading.Thread(target=read, args=(i,)) for i in range(len(paths))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1
    for p, r in zip(paths, results):
        np.testing.assert_array_equal(r, compute_features(load_audio(p, CFG.sample_rate), CFG))


def test_missing_audio_names_file(tmp_path):
    with pytest.raises(AudioError, match="gone.wav"):
        cached_features(tmp_path / "gone.wav", CFG, tmp_path / "cache")


def test_standardizer_matches_pooled_statistics():
    rng = np.random.default_rng(4)
    arrays = [rng.normal(loc=[[1.0], [5.0], [-2.0]], scale=[[0.5], [2.0], [3.0]], size=(n, 3, 1)) for n in (30, 7, 52)]
    pooled = np.concatenate(arrays)
    std = Standardizer().fit(iter(arrays))
    np.testing.assert_allclose(std.mean, pooled.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(std.std, pooled.std(axis=0), rtol=1e-5)
    out = std.apply(pooled)
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=0), 1.0, atol=1e-4)
    # Batched input (B, T, bins, channels) broadcasts over the leading axes.
    assert std.apply(pooled[None]).shape == (1,) + pooled.shape


def test_standardizer_roundtrip_and_constant_band():
    x = np.stack([np.arange(10.0), np.full(10, 3.0)], axis=1)[..., None]
    std = Standardizer().fit([x])
    again = Standardizer.from_dict(json.loads(json.dumps(std.to_dict())))
    np.testing.assert_array_equal(again.apply(x), std.apply(x))
    assert np.all(np.isfinite(again.apply(x)))
    np.testing.assert_array_equal(again.apply(x)[:, 1], 0.0)


def test_standardizer_errors():
    with pytest.raises(ValueError, match="before fit"):
        Standardizer().apply(np.zeros((2, 3, 1)))
    with pytest.raises(ValueError, match="band shape"):
        Standardizer().fit([np.zeros((4, 3, 1)), np.zeros((4, 5, 1))])


def test_same_size_rewrite_of_an_old_file_is_rehashed(tmp_path):
    import os

    audio = _write_tone(tmp_path / "a.wav", freq=440.0)
    old = audio.stat().st_mtime_ns - 10_000_000_000
    os.utime(audio, ns=(old, old))  # an old file: its digest gets memoised
    key_before = cache_key(audio, CFG)
    _write_tone(audio, freq=880.0)  # same size, new bytes, fresh mtime
    assert audio.stat().st_size == (tmp_path / "a.wav").stat().st_size
    assert cache_key(audio, CFG) != key_before
