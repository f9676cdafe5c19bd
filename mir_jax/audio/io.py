"""Audio file loading with validation, and an atomic wav writer.

``load_audio`` reads wav, flac, ogg and mp3 through libsndfile (soundfile), with
librosa/audioread as a fallback for anything libsndfile cannot open, downmixes
to mono, resamples with soxr (librosa's default) and returns float32. Every
failure raises ``AudioError`` whose message starts with the file's path, so a
bad file in a dataset of thousands is found from the log line alone.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from mir_jax.atomic import atomic_open

__all__ = [
    "AudioError",
    "load_audio",
    "save_wav",
    "MIN_SAMPLE_RATE",
    "MAX_SAMPLE_RATE",
    "MAX_CHANNELS",
]

# Rates outside this range are almost certainly a corrupt header; resampling
# from them would either be meaningless or allocate absurd buffers.
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 384_000
# Downmixing any channel count is easy, but a file claiming more channels than
# this is far more likely to be a mislabelled raw file than real music.
MAX_CHANNELS = 32


class AudioError(ValueError):
    """An audio file that cannot be used; the message names the file."""


def _fail(path, reason: str) -> AudioError:
    return AudioError(f"{os.fspath(path)}: {reason}")


def _check_rate(sr, what: str, path) -> int:
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)):
        raise _fail(path, f"{what} must be an integer number of Hz, got {sr!r}")
    sr = int(sr)
    if not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
        raise _fail(
            path,
            f"{what} {sr} Hz is outside the supported range "
            f"[{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}] Hz",
        )
    return sr


def _read(path) -> tuple[np.ndarray, int]:
    """Returns (samples (frames, channels) float32, native rate)."""
    import soundfile as sf

    try:
        data, native_sr = sf.read(os.fspath(path), dtype="float32", always_2d=True)
        return data, native_sr
    except (sf.LibsndfileError, RuntimeError, TypeError) as sf_error:
        first_error = sf_error
    # libsndfile misses some containers (e.g. mp3 before libsndfile 1.1, m4a);
    # librosa falls back to audioread, which needs a system decoder.
    try:
        import librosa

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # librosa's PySoundFile/audioread notices
            y, native_sr = librosa.load(os.fspath(path), sr=None, mono=False, dtype=np.float32)
    except Exception as error:  # noqa: BLE001 - any decoder failure means unreadable
        # libsndfile says "does not exist" for any file it cannot parse; we
        # checked existence already, so report both decoders' errors verbatim.
        fallback = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        raise _fail(path, f"unreadable or corrupt audio (libsndfile: {first_error}; audioread: {fallback})") from error
    y = np.atleast_2d(y).T  # librosa is (channels, samples)
    return np.ascontiguousarray(y, dtype=np.float32), int(native_sr)


def load_audio(path, sr: int, mono: bool = True) -> np.ndarray:
    """Loads an audio file as float32 at sample rate ``sr``.

    Args:
      path: a wav, flac, ogg (Vorbis/Opus) or mp3 file.
      sr: target sample rate in Hz; the file is resampled (soxr, high quality).
      mono: average the channels (shape ``(samples,)``); otherwise return
        ``(channels, samples)`` as librosa does.

    Raises:
      AudioError: the file is missing, empty, unreadable or corrupt, has no
        samples, contains NaN/inf, or has a sample rate or channel count outside
        the supported range; also for a bad target ``sr``. Silence is accepted.
    """
    sr = _check_rate(sr, "target sample rate", path)
    if not os.path.exists(path):
        raise _fail(path, "file not found")
    if not os.path.isfile(path):
        raise _fail(path, "not a regular file")
    if os.path.getsize(path) == 0:
        raise _fail(path, "file is empty (0 bytes)")
    data, native_sr = _read(path)
    native_sr = _check_rate(native_sr, "file sample rate", path)
    num_samples, num_channels = data.shape
    if num_channels < 1 or num_channels > MAX_CHANNELS:
        raise _fail(path, f"{num_channels} channels; supported are 1 to {MAX_CHANNELS}")
    if num_samples == 0:
        raise _fail(path, "audio has zero length (no samples)")
    if not np.all(np.isfinite(data)):
        bad = int(np.count_nonzero(~np.isfinite(data)))
        raise _fail(path, f"{bad} samples are NaN or infinite")
    y = data.mean(axis=1) if mono else data.T
    if native_sr != sr:
        import librosa

        y = librosa.resample(y, orig_sr=native_sr, target_sr=sr, res_type="soxr_hq", axis=-1)
    return np.ascontiguousarray(y, dtype=np.float32)


def save_wav(path, y: np.ndarray, sr: int, subtype: str = "PCM_16") -> None:
    """Writes a wav file atomically (temp file in the same folder, then rename).

    Args:
      path: destination; its folder must exist.
      y: samples, ``(samples,)`` or ``(channels, samples)`` as librosa returns.
      sr: sample rate in Hz.
      subtype: a soundfile wav subtype; ``'FLOAT'`` keeps float32 exactly.

    Raises:
      AudioError: non-finite samples, an empty signal, or samples beyond
        [-1, 1] for an integer subtype (libsndfile would clip them silently).
    """
    import soundfile as sf

    sr = _check_rate(sr, "sample rate", path)
    y = np.asarray(y, dtype=np.float32)
    if y.ndim not in (1, 2) or y.size == 0:
        raise _fail(path, f"cannot write samples of shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise _fail(path, "refusing to write NaN or infinite samples")
    if subtype.startswith("PCM") and np.max(np.abs(y)) > 1.0:
        raise _fail(path, f"peak {np.max(np.abs(y)):.3f} exceeds 1.0 and would clip in {subtype}")
    data = y if y.ndim == 1 else y.T
    with atomic_open(path, "wb") as handle:
        sf.write(handle, data, sr, subtype=subtype, format="WAV")
