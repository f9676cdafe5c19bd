"""On-disk feature cache keyed by audio content and feature config, and
per-band standardisation fitted on training features.

The cache key is a SHA-256 of the audio file's bytes, the full
``FeatureConfig`` and a format version, so renaming a file reuses its
features, while editing the audio or any preprocessing parameter (an ablation)
never reads stale ones. Files are written to a temp file in the cache folder
and renamed, so a killed run never leaves a half-written ``.npy``.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from typing import Iterable, Optional

import numpy as np

from mir_jax.atomic import atomic_open
from mir_jax.audio.features import FeatureConfig, compute_features
from mir_jax.audio.io import load_audio

__all__ = ["cached_features", "cache_key", "file_digest", "Standardizer"]

# Bump when compute_features changes its output for an unchanged config.
CACHE_VERSION = 1
# np.load parses each .npy header with ast.literal_eval, and CPython 3.11's AST constructor
# keeps its recursion counter per interpreter, not per thread (python/cpython#106905): two
# grain reader threads loading at once raised "SystemError: AST constructor recursion depth
# mismatch" once. A cached read takes a fraction of a millisecond, so taking turns costs little.
_NPY_READ_LOCK = threading.Lock()
_HASH_CHUNK = 1 << 20

# In-process memo of file digests keyed by (path, size, mtime, inode): a data
# loader asks for the same file every epoch, re-hashing it each time is waste.
_digest_memo: dict = {}
_memo_lock = threading.Lock()


def file_digest(path) -> str:
    """SHA-256 hex digest of a file's bytes (memoised while the file is unchanged)."""
    path = os.fspath(path)
    stat = os.stat(path)
    memo_key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    with _memo_lock:
        if memo_key in _digest_memo:
            return _digest_memo[memo_key]
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    value = digest.hexdigest()
    # Like git's "racily clean" rule: a file modified within the timestamp
    # granularity could change again without its mtime moving, so only
    # remember digests of files that have been still for a while.
    if time.time_ns() - stat.st_mtime_ns > 2_000_000_000:
        with _memo_lock:
            _digest_memo[memo_key] = value
    return value


def cache_key(audio_path, cfg: FeatureConfig) -> str:
    """Hex key from the audio content, the feature config and the cache version."""
    config_json = json.dumps(cfg.to_dict(), sort_keys=True)
    payload = f"v{CACHE_VERSION}\n{file_digest(audio_path)}\n{config_json}"
    return hashlib.sha256(payload.encode()).hexdigest()


def _atomic_save(path: str, array: np.ndarray) -> None:
    with atomic_open(path, "wb") as handle:
        np.save(handle, array)


def cached_features(audio_path, cfg: FeatureConfig, cache_dir=None) -> np.ndarray:
    """Features of an audio file, computed once per (content, config).

    Args:
      audio_path: any file ``io.load_audio`` reads.
      cfg: the feature config.
      cache_dir: folder for ``<key>.npy`` files (created if needed); ``None``
        computes without caching.

    Returns:
      float32 ``(frames, cfg.num_bins, cfg.num_channels)``.
    """
    if not os.path.isfile(audio_path):
        load_audio(audio_path, cfg.sample_rate)  # raises AudioError naming the file
    if cache_dir is None:
        return compute_features(load_audio(audio_path, cfg.sample_rate), cfg)
    os.makedirs(cache_dir, exist_ok=True)
    path = os.path.join(os.fspath(cache_dir), cache_key(audio_path, cfg) + ".npy")
    if os.path.exists(path):
        try:
            with _NPY_READ_LOCK:
                return np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError):
            pass  # unreadable entry (e.g. disk trouble): recompute and overwrite it
    features = compute_features(load_audio(audio_path, cfg.sample_rate), cfg)
    _atomic_save(path, features)
    return features


class Standardizer:
    """Per-band standardisation ``(x - mean) / std`` with statistics from training data.

    Statistics are per (bin, channel), pooled over all frames of all fitted
    arrays; they are accumulated in float64 (Chan et al. parallel update) so
    fitting streams over a dataset without holding it in memory.
    """

    def __init__(self, mean: Optional[np.ndarray] = None, std: Optional[np.ndarray] = None, eps: float = 1e-5):
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float32)
        self.std = None if std is None else np.asarray(std, dtype=np.float32)
        self.eps = float(eps)

    def fit(self, arrays: Iterable[np.ndarray]) -> "Standardizer":
        """Fits on an iterable of ``(frames, bins, channels)`` arrays."""
        count, mean, m2 = 0, None, None
        for array in arrays:
            x = np.asarray(array, dtype=np.float64)
            if x.ndim < 2:
                raise ValueError(f"Standardizer.fit expects (frames, bins, ...) arrays, got shape {x.shape}")
            if mean is not None and x.shape[1:] != mean.shape:
                raise ValueError(f"Standardizer.fit: band shape {x.shape[1:]} differs from earlier {mean.shape}")
            n = x.shape[0]
            if n == 0:
                continue
            batch_mean = x.mean(axis=0)
            batch_m2 = ((x - batch_mean) ** 2).sum(axis=0)
            if mean is None:
                count, mean, m2 = n, batch_mean, batch_m2
                continue
            total = count + n
            delta = batch_mean - mean
            mean = mean + delta * (n / total)
            m2 = m2 + batch_m2 + delta**2 * (count * n / total)
            count = total
        if mean is None:
            raise ValueError("Standardizer.fit got no frames")
        self.mean = mean.astype(np.float32)
        self.std = np.sqrt(m2 / count).astype(np.float32)
        return self

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Standardises ``(..., frames, bins, channels)`` features; float32 out."""
        if self.mean is None:
            raise ValueError("Standardizer.apply called before fit or from_dict")
        x = np.asarray(x, dtype=np.float32)
        if x.shape[-self.mean.ndim :] != self.mean.shape:
            raise ValueError(f"Standardizer.apply: band shape {x.shape} does not end with {self.mean.shape}")
        return (x - self.mean) / np.maximum(self.std, self.eps)

    __call__ = apply

    def to_dict(self) -> dict:
        """JSON-serialisable statistics."""
        if self.mean is None:
            raise ValueError("Standardizer.to_dict called before fit")
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "eps": self.eps}

    @classmethod
    def from_dict(cls, d: dict) -> "Standardizer":
        missing = {"mean", "std"} - set(d)
        if missing:
            raise ValueError(f"Standardizer.from_dict: missing keys {sorted(missing)}")
        return cls(np.asarray(d["mean"]), np.asarray(d["std"]), float(d.get("eps", 1e-5)))
