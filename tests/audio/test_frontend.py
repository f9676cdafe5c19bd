"""Tests for mir_jax.audio.frontend: the JAX log-mel against librosa."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import librosa
import numpy as np
import pytest

from mir_jax.audio.features import FeatureConfig, compute_features
from mir_jax.audio.frontend import LogMelConfig, LogMelFrontend, frame_signal, logmel, logmel_batched

SR = 22050
TOLERANCE_DB = 0.05


def _clips(num, seconds, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    clips = []
    for i in range(num):
        tone = 0.5 * np.sin(2 * np.pi * rng.uniform(60, 3000) * t) * np.exp(-rng.uniform(0.5, 5) * t)
        clips.append(tone + 10 ** rng.uniform(-5, -2) * rng.standard_normal(t.size))
    return np.stack(clips).astype(np.float32)


def _librosa_logmel(y, cfg: LogMelConfig):
    mel = librosa.feature.melspectrogram(
        y=y, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels,
        fmin=cfg.fmin, fmax=cfg.fmax, window=cfg.window, center=True, pad_mode="constant", power=2.0,
    )
    return librosa.power_to_db(mel, ref=1.0, amin=cfg.amin, top_db=cfg.top_db).T


def _assert_close_to_librosa(out, clips, cfg):
    assert out.shape == (len(clips), 1 + clips.shape[1] // cfg.hop_length, cfg.n_mels)
    for got, clip in zip(np.asarray(out), clips):
        ref = _librosa_logmel(clip, cfg)
        valid = ref > -80.0
        assert valid.mean() > 0.2  # the comparison covers a real part of the spectrogram
        assert np.abs(got - ref)[valid].max() < TOLERANCE_DB


@pytest.mark.parametrize(
    "cfg",
    [
        LogMelConfig(),  # sr 22050, n_fft 2048, hop 512, 128 mels
        LogMelConfig(n_fft=1024, hop_length=441, n_mels=40, fmin=27.5, fmax=8000.0),  # hop does not divide n_fft
        LogMelConfig(n_fft=512, hop_length=160, n_mels=64, top_db=None),
    ],
)
def test_matches_librosa_within_tolerance(cfg):
    clips = _clips(3, 1.3)
    _assert_close_to_librosa(logmel(clips, cfg), clips, cfg)


def test_silence_matches_librosa_floor():
    cfg = LogMelConfig(n_mels=40)
    out = np.asarray(logmel(np.zeros((1, SR), np.float32), cfg))[0]
    np.testing.assert_allclose(out, _librosa_logmel(np.zeros(SR, np.float32), cfg), atol=1e-4)


def test_chunked_and_threaded_paths_agree():
    cfg = LogMelConfig(n_mels=32)
    clips = _clips(5, 0.6, seed=1)
    full = np.asarray(logmel(clips, cfg))
    np.testing.assert_allclose(np.asarray(logmel(clips, cfg, chunk_size=2)), full, atol=1e-4)
    np.testing.assert_allclose(np.asarray(logmel_batched(clips, cfg, chunk_size=2, num_threads=2)), full, atol=1e-4)
    np.testing.assert_allclose(np.asarray(logmel(clips[0], cfg)), full[0], atol=1e-4)


def test_frame_signal_matches_librosa_frame():
    x = np.arange(3 * 1000, dtype=np.float32).reshape(3, 1000)
    for n_fft, hop in [(256, 64), (200, 70), (100, 100)]:
        ref = np.swapaxes(librosa.util.frame(x, frame_length=n_fft, hop_length=hop, axis=-1), -1, -2)
        np.testing.assert_array_equal(np.asarray(frame_signal(jnp.asarray(x), n_fft, hop)), ref)


def test_matches_host_mel_features():
    feature_cfg = FeatureConfig(kind="mel", n_fft=1024, hop_length=441, n_mels=40, fmin=27.5)
    clip = _clips(1, 1.0, seed=2)
    host = compute_features(clip[0], feature_cfg)[..., 0]
    device = np.asarray(logmel(clip, LogMelConfig.from_feature_config(feature_cfg)))[0]
    assert device.shape == host.shape
    valid = host > host.max() - 80
    assert np.abs(device - host)[valid].max() < TOLERANCE_DB


def test_from_feature_config_rejects_other_features():
    with pytest.raises(ValueError, match="'kind'"):
        LogMelConfig.from_feature_config(FeatureConfig(kind="cqt"))
    with pytest.raises(ValueError, match="'n_ffts'"):
        LogMelConfig.from_feature_config(FeatureConfig(n_ffts=(1024, 2048)))


def test_module_as_first_layer_has_no_params_and_differentiates():
    cfg = LogMelConfig(n_fft=512, hop_length=256, n_mels=16)

    class Model(nn.Module):
        @nn.compact
        def __call__(self, waveforms):
            feats = LogMelFrontend(cfg, chunk_size=1)(waveforms)
            return nn.Dense(1)(feats.mean(axis=1))

    clips = jnp.asarray(_clips(2, 0.3, seed=3))
    variables = Model().init(jax.random.PRNGKey(0), clips)
    leaves = jax.tree_util.tree_leaves_with_path(variables["params"])
    assert all("Dense" in jax.tree_util.keystr(path) for path, _ in leaves)
    np.testing.assert_allclose(
        np.asarray(LogMelFrontend(cfg).apply({}, clips)), np.asarray(logmel(clips, cfg)), atol=1e-5
    )
    grad = jax.grad(lambda x: Model().apply(variables, x).sum())(clips)
    assert grad.shape == clips.shape and bool(jnp.all(jnp.isfinite(grad))) and bool(jnp.any(grad != 0))


@pytest.mark.slow
def test_benchmark_meets_the_2x_floor(tmp_path):
    """Timing on a shared machine is noisy: this is a slow, opt-in check."""
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[2] / "experiments" / "benchmarks" / "frontend.py"
    spec = importlib.util.spec_from_file_location("frontend_benchmark", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.main(["--clips", "16", "--seconds", "30", "--repeats", "3", "--json", str(tmp_path / "r.json")])
    assert result["max_abs_error_db"] < TOLERANCE_DB
    assert result["ratio_jax_over_librosa"] >= 2.0
