"""Light audio effects that make rendered music closer to recordings: room, noise, gain."""

from __future__ import annotations

import numpy as np
import scipy.signal

REVERB_RT60_RANGE = (0.2, 0.9)  # seconds
REVERB_WET_RANGE = (0.05, 0.3)  # fraction of the output that is reverberant
SNR_DB_RANGE = (30.0, 60.0)
PEAK_DB_RANGE = (-12.0, -1.0)  # output peak level


def room_impulse_response(rng: np.random.Generator, sample_rate: int,
                          rt60: float) -> np.ndarray:
    """Exponentially decaying noise with a few early reflections: a cheap small room."""
    n = int(rt60 * sample_rate)
    t = np.arange(n) / sample_rate
    # 60 dB of decay over rt60 seconds: amplitude exp(-6.9 t / rt60).
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    for _ in range(4):
        ir[int(rng.uniform(0.003, 0.03) * sample_rate)] += rng.uniform(0.5, 1.5)
    ir[0] = 0.0
    return ir / np.sqrt(np.sum(ir**2))


def apply_effects(y: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Reverb, additive noise and a random peak level; returns float32 within [-1, 1]."""
    y = np.asarray(y, dtype=np.float64)
    dry_rms = np.sqrt(np.mean(y**2)) + 1e-12
    rt60 = rng.uniform(*REVERB_RT60_RANGE)
    wet = rng.uniform(*REVERB_WET_RANGE)
    ir = room_impulse_response(rng, sample_rate, rt60)
    rev = scipy.signal.oaconvolve(y, ir)[: y.size]
    rev *= dry_rms / (np.sqrt(np.mean(rev**2)) + 1e-12)
    y = (1 - wet) * y + wet * rev
    snr_db = rng.uniform(*SNR_DB_RANGE)
    # Pink-ish noise: white noise through a one-pole low-pass.
    noise = scipy.signal.lfilter([1.0], [1.0, -0.95], rng.standard_normal(y.size))
    noise *= np.sqrt(np.mean(y**2)) / (np.sqrt(np.mean(noise**2)) + 1e-12)
    y = y + noise * 10 ** (-snr_db / 20)
    return normalize_peak(y, rng.uniform(*PEAK_DB_RANGE))


def normalize_peak(y: np.ndarray, peak_db: float = -1.0) -> np.ndarray:
    """Scales ``y`` so its peak is ``peak_db`` dBFS (silence stays silence)."""
    peak = np.max(np.abs(y)) if y.size else 0.0
    if peak <= 0:
        return np.asarray(y, dtype=np.float32)
    return (y * (10 ** (peak_db / 20) / peak)).astype(np.float32)
