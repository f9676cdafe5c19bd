"""Host-side spectral features computed with librosa.

Every signal-processing parameter lives in ``FeatureConfig``; the frame rate,
the number of bins and of channels are derived from it, never typed twice.

Conventions (shared with the JAX front end in ``frontend.py``):
  * frames are centred: frame ``k`` covers samples centred on ``k * hop``, the
    signal is zero-padded by ``n_fft // 2`` on both sides (librosa
    ``center=True, pad_mode='constant'``), so a signal of ``N`` samples gives
    ``1 + N // hop`` frames and ``frame_times(k) = k * hop / sr``.
  * the linear value of each kind is: 'stft' magnitude ``|X|``; 'mel' power
    (``melspectrogram(power=2)``); 'cqt' magnitude; 'chroma' librosa's
    ``chroma_stft`` of the power spectrogram (each frame max-normalised, no
    tuning estimate so that features do not depend on the track's content).
  * ``log='db'`` is ``power_to_db`` for power kinds ('mel', 'chroma') and
    ``amplitude_to_db`` for magnitude kinds ('stft', 'cqt'), both with
    ``ref=1.0`` and clipped at ``top_db`` below the track's maximum (``None``
    disables the clip); ``log='log1p'`` is ``log(1 + log1p_scale * x)``.
  * processing order: linear value -> adaptive whitening -> log -> local
    contrast normalisation. Per-band standardisation from training statistics
    is ``cache.Standardizer``, applied by the input pipeline.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

import numpy as np

__all__ = [
    "FeatureConfig",
    "compute_features",
    "frame_times",
    "num_frames",
    "mel_filterbank",
    "adaptive_whitening",
    "local_contrast_normalization",
    "PAD_MODE",
]

KINDS = ("stft", "mel", "cqt", "chroma")
LOGS = ("none", "db", "log1p")
# librosa's center=True padding; the JAX front end pads the same way.
PAD_MODE = "constant"
# Smallest value before a dB conversion, for magnitudes (power uses its square).
_AMIN = 1e-5
# Whitening floor: Stowell & Plumbley's r, in the kind's linear units; keeps
# near-silent bands from being blown up to full scale.
_WHITENING_FLOOR = 1e-4
_N_CHROMA = 12


def _config_error(key: str, message: str) -> ValueError:
    return ValueError(f"feature config key '{key}': {message}")


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """Signal-processing parameters of the host features (all explicit)."""

    kind: str = "mel"  # 'stft', 'mel', 'cqt' or 'chroma'
    sample_rate: int = 22050  # Hz; audio is resampled to this rate
    n_fft: int = 2048  # FFT/window size in samples (stft, mel, chroma)
    n_ffts: tuple = ()  # several frame sizes stacked as channels; () means (n_fft,)
    hop_length: int = 441  # samples between frames; 441 at 22050 Hz is 50 fps
    window: str = "hann"  # scipy window name
    n_mels: int = 80  # mel bands ('mel')
    fmin: float = 27.5  # Hz, lowest mel edge / lowest CQT bin (A0)
    fmax: Optional[float] = None  # Hz, highest mel edge; None is sample_rate / 2
    bins_per_octave: int = 12  # CQT resolution
    n_bins: int = 84  # CQT bins (7 octaves at 12 per octave)
    log: str = "db"  # 'none', 'db' or 'log1p'
    log1p_scale: float = 1.0  # C in log(1 + C * x)
    top_db: Optional[float] = 80.0  # dB below the track's max kept by 'db'; None keeps all
    whitening: bool = False  # adaptive spectral whitening (Stowell & Plumbley 2007)
    whitening_memory_s: float = 10.0  # seconds for a band's peak to decay by a factor 1000
    lcn: bool = False  # local contrast normalisation over (time, freq)
    lcn_size: tuple = (9, 9)  # LCN neighbourhood (frames, bins)

    def __post_init__(self):
        # JSON/ConfigDict give lists; keep tuples so the config stays hashable.
        for key in ("n_ffts", "lcn_size"):
            value = getattr(self, key)
            try:
                object.__setattr__(self, key, tuple(int(n) for n in value))
            except (TypeError, ValueError):
                raise _config_error(key, f"must be a sequence of integers, got {value!r}") from None
        self._validate()

    def _validate(self):
        if self.kind not in KINDS:
            raise _config_error("kind", f"{self.kind!r} is not one of {KINDS}")
        if self.log not in LOGS:
            raise _config_error("log", f"{self.log!r} is not one of {LOGS}")
        for key in ("sample_rate", "n_fft", "hop_length", "n_mels", "bins_per_octave", "n_bins"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise _config_error(key, f"must be a positive integer, got {value!r}")
        if any(n <= 0 for n in self.fft_sizes):
            raise _config_error("n_ffts", f"sizes must be positive, got {self.n_ffts}")
        if len(set(self.fft_sizes)) != len(self.fft_sizes):
            raise _config_error("n_ffts", f"sizes repeat: {self.n_ffts}")
        if self.kind == "stft" and len(self.fft_sizes) > 1:
            raise _config_error("n_ffts", "several frame sizes give different bin counts for 'stft'; use 'mel' or 'chroma'")
        if self.kind == "cqt" and self.n_ffts:
            raise _config_error("n_ffts", "'cqt' has no FFT size; leave n_ffts empty")
        nyquist = self.sample_rate / 2
        if not 0 <= self.fmin < nyquist:
            raise _config_error("fmin", f"{self.fmin} Hz must be in [0, {nyquist}) Hz")
        if self.fmax is not None and not self.fmin < self.fmax <= nyquist:
            raise _config_error("fmax", f"{self.fmax} Hz must be in (fmin={self.fmin}, {nyquist}] Hz")
        if self.kind == "cqt":
            top = self.fmin * 2 ** ((self.n_bins - 1) / self.bins_per_octave)
            if top >= nyquist:
                raise _config_error("n_bins", f"the top CQT bin ({top:.0f} Hz) is above Nyquist ({nyquist} Hz)")
        if self.log1p_scale <= 0:
            raise _config_error("log1p_scale", f"must be positive, got {self.log1p_scale}")
        if self.top_db is not None and self.top_db <= 0:
            raise _config_error("top_db", f"must be positive or None, got {self.top_db}")
        if self.whitening_memory_s <= 0:
            raise _config_error("whitening_memory_s", f"must be positive, got {self.whitening_memory_s}")
        if len(self.lcn_size) != 2 or min(self.lcn_size) < 1:
            raise _config_error("lcn_size", f"must be two positive sizes (frames, bins), got {self.lcn_size}")

    # Derived quantities: never store them separately.
    @property
    def fft_sizes(self) -> tuple:
        """The frame sizes, one per channel."""
        return self.n_ffts or (self.n_fft,)

    @property
    def frame_rate(self) -> float:
        """Frames per second."""
        return self.sample_rate / self.hop_length

    @property
    def num_bins(self) -> int:
        """Feature bins per frame and channel."""
        if self.kind == "stft":
            return self.fft_sizes[0] // 2 + 1
        if self.kind == "mel":
            return self.n_mels
        if self.kind == "cqt":
            return self.n_bins
        return _N_CHROMA

    @property
    def num_channels(self) -> int:
        """Stacked frame sizes (1 for 'cqt')."""
        return 1 if self.kind == "cqt" else len(self.fft_sizes)

    @property
    def mel_fmax(self) -> float:
        return self.sample_rate / 2 if self.fmax is None else float(self.fmax)

    @classmethod
    def from_dict(cls, d: Any) -> "FeatureConfig":
        """Builds a config from a dict or ConfigDict; unknown keys are an error."""
        if hasattr(d, "to_dict"):
            d = d.to_dict()
        d = dict(d)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown feature config keys {unknown}; known keys are {sorted(known)}")
        return cls(**d)

    def to_dict(self) -> dict:
        """A JSON-serialisable dict (tuples become lists) that from_dict accepts."""
        d = dataclasses.asdict(self)
        d["n_ffts"] = list(self.n_ffts)
        d["lcn_size"] = list(self.lcn_size)
        return d


def num_frames(num_samples: int, cfg: FeatureConfig) -> int:
    """Frames for a signal of ``num_samples`` under the centred convention."""
    return 1 + int(num_samples) // cfg.hop_length


def frame_times(num_frames: int, cfg: FeatureConfig) -> np.ndarray:
    """Centre time in seconds of each frame: ``k * hop / sr``."""
    return np.arange(int(num_frames)) * (cfg.hop_length / cfg.sample_rate)


def mel_filterbank(cfg: FeatureConfig, n_fft: Optional[int] = None) -> np.ndarray:
    """librosa's (slaney) mel matrix, shape (n_mels, n_fft // 2 + 1), float32."""
    import librosa

    return librosa.filters.mel(
        sr=cfg.sample_rate,
        n_fft=n_fft or cfg.n_fft,
        n_mels=cfg.n_mels,
        fmin=cfg.fmin,
        fmax=cfg.mel_fmax,
        dtype=np.float32,
    )


def adaptive_whitening(x: np.ndarray, frame_rate: float, memory_s: float, floor: float = _WHITENING_FLOOR) -> np.ndarray:
    """Stowell & Plumbley (2007) adaptive whitening of a (frames, bins) array.

    Each bin is divided by its running peak ``P[t] = max(x[t], floor, m * P[t-1])``
    where the decay ``m`` makes a peak fall by a factor 1000 in ``memory_s``.
    Values are non-negative linear magnitudes or powers.
    """
    decay = 10.0 ** (-3.0 / (memory_s * frame_rate))
    x = np.asarray(x, dtype=np.float32)
    peaks = np.empty_like(x)
    peak = np.full(x.shape[1:], floor, dtype=np.float32)
    for t in range(x.shape[0]):  # a causal recursion: cannot vectorise over time
        peak = np.maximum(np.maximum(x[t], floor), decay * peak)
        peaks[t] = peak
    return x / peaks


def local_contrast_normalization(x: np.ndarray, size=(9, 9), eps: float = 1e-8) -> np.ndarray:
    """Subtracts the local mean and divides by the local std of a (frames, bins) array.

    The divisor is ``max(local_std, mean(local_std))`` (Jarrett et al. 2009) so
    that flat regions are not amplified into noise.
    """
    from scipy import ndimage

    x = np.asarray(x, dtype=np.float64)
    mean = ndimage.uniform_filter(x, size=size, mode="reflect")
    var = ndimage.uniform_filter(x * x, size=size, mode="reflect") - mean**2
    std = np.sqrt(np.maximum(var, 0.0))
    divisor = np.maximum(np.maximum(std, std.mean()), eps)
    return ((x - mean) / divisor).astype(np.float32)


def _linear(y: np.ndarray, cfg: FeatureConfig, n_fft: int) -> np.ndarray:
    """The kind's linear value for one frame size, shape (bins, frames)."""
    import librosa

    if cfg.kind == "cqt":
        return np.abs(
            librosa.cqt(
                y,
                sr=cfg.sample_rate,
                hop_length=cfg.hop_length,
                fmin=cfg.fmin,
                n_bins=cfg.n_bins,
                bins_per_octave=cfg.bins_per_octave,
                window=cfg.window,
                pad_mode=PAD_MODE,
            )
        )
    spec = np.abs(
        librosa.stft(y, n_fft=n_fft, hop_length=cfg.hop_length, window=cfg.window, center=True, pad_mode=PAD_MODE)
    )
    if cfg.kind == "stft":
        return spec
    power = spec**2
    if cfg.kind == "mel":
        return mel_filterbank(cfg, n_fft) @ power
    return librosa.feature.chroma_stft(S=power, sr=cfg.sample_rate, n_fft=n_fft, n_chroma=_N_CHROMA, tuning=0.0)


def _log(x: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    import librosa

    if cfg.log == "none":
        return x
    if cfg.log == "log1p":
        return np.log1p(cfg.log1p_scale * x)
    if cfg.kind in ("mel", "chroma"):
        return librosa.power_to_db(x, ref=1.0, amin=_AMIN**2, top_db=cfg.top_db)
    return librosa.amplitude_to_db(x, ref=1.0, amin=_AMIN, top_db=cfg.top_db)


def compute_features(y: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Features of a mono waveform at ``cfg.sample_rate``.

    Returns:
      float32 array of shape ``(num_frames(len(y)), cfg.num_bins, cfg.num_channels)``.
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"compute_features expects a non-empty mono waveform, got shape {y.shape}")
    frames = num_frames(len(y), cfg)
    sizes = (None,) if cfg.kind == "cqt" else cfg.fft_sizes
    channels = []
    for n_fft in sizes:
        x = _linear(y, cfg, n_fft).T  # (frames, bins)
        if x.shape[0] != frames:  # guard against a librosa convention change
            raise AssertionError(f"librosa gave {x.shape[0]} frames, expected {frames}")
        if cfg.whitening:
            x = adaptive_whitening(x, cfg.frame_rate, cfg.whitening_memory_s)
        x = _log(x, cfg)
        if cfg.lcn:
            x = local_contrast_normalization(x, cfg.lcn_size)
        channels.append(np.asarray(x, dtype=np.float32))
    return np.stack(channels, axis=-1)
