"""Log-mel throughput: librosa (a loop over clips) vs the JAX front end (batched).

    .venv/bin/python experiments/benchmarks/frontend.py [--json PATH]

Both compute the same features, checked before timing: sr 22050 Hz, n_fft
2048, hop 512, hann window, 128 mel bands (0 Hz .. Nyquist, slaney), power 2,
``center=True, pad_mode='constant'``, then dB with ``ref=1, amin=1e-10,
top_db=80``. The input is 64 clips of 30 s of noise-modulated tones. Prints
seconds of audio per second for each and the ratio JAX/librosa (median of
``--repeats`` timed runs after one warm-up run each). The JAX path is
``frontend.logmel_batched`` (chunks of ``--chunk`` clips, spread over one
thread per core); a second line shows a single jitted ``logmel`` call (how a
model's first layer runs it), which XLA executes on one core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings

import jax
import jax.numpy as jnp
import librosa
import numpy as np

from mir_jax.audio.frontend import LogMelConfig, logmel, logmel_batched


def make_clips(num_clips: int, seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    """Tones with an amplitude envelope over quiet noise: realistic dB ranges."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    freqs = rng.uniform(55.0, 2000.0, size=(num_clips, 1))
    envelope = 0.5 * (1 + np.sin(2 * np.pi * rng.uniform(0.5, 4.0, size=(num_clips, 1)) * t))
    clips = 0.3 * envelope * np.sin(2 * np.pi * freqs * t) + 0.01 * rng.standard_normal((num_clips, t.size))
    return clips.astype(np.float32)


def librosa_logmel(clips: np.ndarray, cfg: LogMelConfig) -> list:
    out = []
    for clip in clips:
        mel = librosa.feature.melspectrogram(
            y=clip, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels,
            fmin=cfg.fmin, fmax=cfg.fmax, window=cfg.window, center=True, pad_mode="constant", power=2.0,
        )
        out.append(librosa.power_to_db(mel, ref=1.0, amin=cfg.amin, top_db=cfg.top_db).T)
    return out


def time_runs(fn, repeats: int) -> list:
    fn()  # warm-up: jit compilation, librosa's filter caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--chunk", type=int, default=1, help="clips per jitted chunk")
    parser.add_argument("--threads", type=int, default=None, help="host threads (default: all cores)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)

    cfg = LogMelConfig(sample_rate=22050, n_fft=2048, hop_length=512, n_mels=128, top_db=80.0)
    clips = make_clips(args.clips, args.seconds, cfg.sample_rate)
    device_clips = jax.device_put(jnp.asarray(clips))

    def run_jax():
        return logmel_batched(device_clips, cfg, chunk_size=args.chunk, num_threads=args.threads).block_until_ready()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = np.stack(librosa_logmel(clips, cfg))
    jax_out = np.asarray(run_jax())
    valid = reference > -80.0
    max_error_db = float(np.abs(jax_out - reference)[valid].max())

    def run_jax_one_call():  # one jitted call, as when the front end is a model's first layer
        return logmel(device_clips, cfg, chunk_size=args.chunk).block_until_ready()

    # Interleave the runs so background load hits all alike.
    lib_times, jax_times, one_call_times = [], [], []
    for _ in range(args.repeats):
        lib_times += time_runs(lambda: librosa_logmel(clips, cfg), 1)
        jax_times += time_runs(run_jax, 1)
        one_call_times += time_runs(run_jax_one_call, 1)
    audio_seconds = args.clips * args.seconds
    lib_speed = audio_seconds / statistics.median(lib_times)
    jax_speed = audio_seconds / statistics.median(jax_times)
    one_call_speed = audio_seconds / statistics.median(one_call_times)
    result = {
        "params": {"sample_rate": cfg.sample_rate, "n_fft": cfg.n_fft, "hop_length": cfg.hop_length,
                   "n_mels": cfg.n_mels, "top_db": cfg.top_db, "clips": args.clips, "seconds": args.seconds,
                   "chunk": args.chunk, "threads": args.threads or os.cpu_count()},
        "backend": jax.default_backend(),
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "librosa_audio_s_per_s": lib_speed,
        "jax_audio_s_per_s": jax_speed,
        "ratio_jax_over_librosa": jax_speed / lib_speed,
        "jax_one_jit_call_audio_s_per_s": one_call_speed,
        "ratio_one_jit_call_over_librosa": one_call_speed / lib_speed,
        "one_jit_call_times_s": one_call_times,
        "librosa_times_s": lib_times,
        "jax_times_s": jax_times,
        "max_abs_error_db": max_error_db,
    }
    print(f"librosa (loop over {args.clips} clips): {lib_speed:10.0f} s of audio / s")
    print(f"JAX front end ({jax.default_backend()}, batched): {jax_speed:10.0f} s of audio / s")
    print(f"JAX front end, one jit call (lax.map over chunks, one thread): {one_call_speed:10.0f} s of audio / s"
          f"  ({one_call_speed / lib_speed:.2f}x librosa)")
    print(f"ratio JAX / librosa: {jax_speed / lib_speed:.2f}x   max |error| where librosa > -80 dB: {max_error_db:.2e} dB")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
    return result


if __name__ == "__main__":
    main()
