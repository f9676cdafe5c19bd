"""Clip-level profiles that frame pooling cannot express, as features for a model's head.

* :func:`pitch_class_profile` and :class:`RotationInvariant`: a CQT folded into
  a 12-bin pitch-class profile, read by an MLP at each of its 12 rotations and
  maximised over them (transposition-invariant tonal features, e.g. for mode).
* :func:`onset_autocorrelation`: per-band onset envelopes and their
  autocorrelation over lags (the tempogram summary classic tempo estimators
  read), for tempo and note density, read by an MLP of :data:`RHYTHM_HIDDEN`
  units. A tempo is a period, not a frame's content, so max, mean or attention
  pooling of frames cannot give it.

Both take (B, T, bins, channels) features and a (B, T) mask of real frames and
ignore padded frames.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

RHYTHM_LAGS = 64  # autocorrelation lags in frames (~3 s at 21.5 fps: periods down to 20 BPM)
RHYTHM_BANDS = 4  # onset envelopes per clip, from equal slices of the input bins
RHYTHM_HIDDEN = 64  # hidden width of the MLP that clip and seq2seq models put over them


def masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
  """(B, T, D), (B, T) -> (B, D) mean over real frames (0 for a row without any)."""
  m = mask.astype(x.dtype)[..., None]
  return (x * m).sum(axis=1) / jnp.maximum(m.sum(axis=1), 1.0)


def pitch_class_profile(feats: jax.Array, mask: jax.Array, bins_per_octave: int = 12) -> jax.Array:
  """(B, 12) mean over real frames, octaves and channels of (B, T, bins, C) features,
  centred and scaled per clip (the profile's shape, not its level)."""
  b, t, f, c = feats.shape
  if f % bins_per_octave:
    raise ValueError(f'config.model.pitch_profile needs input bins in whole octaves of '
                     f'{bins_per_octave} (a CQT with 12 bins per octave), got {f} bins')
  x = feats.astype(jnp.float32).reshape(b, t, f // bins_per_octave, bins_per_octave, c)
  x = masked_mean(x.mean(axis=(2, 4)), mask)
  x = x - x.mean(axis=-1, keepdims=True)
  return x / (jnp.sqrt(jnp.mean(x * x, axis=-1, keepdims=True)) + 1e-6)


def onset_autocorrelation(feats: jax.Array, mask: jax.Array, max_lag: int = RHYTHM_LAGS,
                          bands: int = RHYTHM_BANDS) -> jax.Array:
  """(B, T, bins, C) features, (B, T) mask -> (B, bands * (max_lag + 2)) rhythm features.

  Per band: the autocorrelation of the mean-removed onset envelope at lags
  1..``max_lag`` divided by its value at lag 0 (so it does not depend on
  loudness), then log mean and log std of the envelope (note density).
  Padded frames take no part: a clip gives the same features at any padding.
  Every lag is divided by the same pair count (the biased estimator: lower
  variance at long lags, which shrink by (n - lag) / n), so crops much shorter
  than the evaluation clips see slightly smaller long-lag values.
  """
  b, t, f, c = feats.shape
  x = feats.astype(jnp.float32)
  bands = max(1, min(int(bands), f))
  edges = [round(i * f / bands) for i in range(bands + 1)]
  x = jnp.stack([x[:, :, lo:hi].mean(axis=(2, 3)) for lo, hi in zip(edges[:-1], edges[1:])],
                axis=-1)  # (B, T, bands)
  pair = mask[:, 1:] & mask[:, :-1]
  env = jnp.where(pair[..., None], jax.nn.relu(x[:, 1:] - x[:, :-1]), 0.0)  # (B, T-1, bands)
  m = pair.astype(jnp.float32)[..., None]
  count = jnp.maximum(m.sum(axis=1), 1.0)  # (B, 1)
  mean = env.sum(axis=1) / count  # (B, bands)
  centred = (env - mean[:, None]) * m
  var = (centred * centred).sum(axis=1) / count
  n = env.shape[1]
  lags = []
  for lag in range(1, max_lag + 1):
    if lag < n:
      lags.append((centred[:, lag:] * centred[:, :-lag]).sum(axis=1) / count)
    else:
      lags.append(jnp.zeros_like(mean))
  acf = jnp.stack(lags, axis=1) / (var[:, None] + 1e-6)  # (B, max_lag, bands)
  level = jnp.stack([jnp.log(mean + 1e-4), 0.5 * jnp.log(var + 1e-8)], axis=1)  # (B, 2, bands)
  return jnp.concatenate([acf, level], axis=1).reshape(b, -1)


class RotationInvariant(nn.Module):
  """(B, K) circular profile -> (B, features): max over the K rotations of an MLP."""
  features: int
  hidden: int = 32

  @nn.compact
  def __call__(self, profile: jax.Array) -> jax.Array:
    k = profile.shape[-1]
    rotations = jnp.stack([jnp.roll(profile, -r, axis=-1) for r in range(k)], axis=1)  # (B, K, K)
    h = nn.relu(nn.Dense(self.hidden, name='hidden')(rotations))
    return nn.relu(nn.Dense(self.features, name='out')(h)).max(axis=1)
