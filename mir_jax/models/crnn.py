"""A convolutional front end over (time, frequency) and the CRNN frame model.

``ConvFrontEnd`` is shared with the clip models (:mod:`mir_jax.models.clip`):
blocks of 2-D convolution, ReLU, optional layer norm over channels and max
pooling, with pooling over time optional so frame models keep one output per
input frame. Padded frames are zeroed before every convolution so they do not
leak into real frames, and the mask is pooled with the features.

``CRNN`` (registered as ``crnn``): the front end with no time pooling, each
frame's (freq, channels) flattened, an optional dense projection, the
recurrent stack of :mod:`mir_jax.nn.modules` (bidirectional, or
unidirectional for causal/online use) and a dense layer per frame.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from mir_jax.models.frame import recurrent_head


def _per_block(values: Sequence[int], num_blocks: int, name: str) -> tuple[int, ...]:
  values = tuple(int(v) for v in values) if values else (1,) * num_blocks
  if len(values) != num_blocks or any(v < 1 for v in values):
    raise ValueError(f'config.model.{name} must list {num_blocks} positive integers (one per '
                     f'conv block), got {values}')
  return values


def check_features(batch) -> jax.Array:
  feats = batch['features']
  if feats.ndim != 4:
    raise ValueError(f"batch['features'] must be (batch, time, bins, channels), got shape "
                     f'{feats.shape}')
  return feats


def batch_mask(batch, feats: jax.Array) -> jax.Array:
  """(B, T) bool: the batch's mask, or every frame real when the batch has none."""
  mask = batch.get('mask')
  if mask is None:
    return jnp.ones(feats.shape[:2], bool)
  return mask.astype(bool)


def pool_mask(mask: jax.Array, window: int) -> jax.Array:
  """Mask after max pooling over time with ``window`` (SAME): real if any input frame is."""
  if window == 1:
    return mask
  # Padding only at the end keeps pooled frame i = input frames [i*w, (i+1)*w) for any length.
  pooled = nn.max_pool(mask.astype(jnp.float32)[..., None], (window,), strides=(window,),
                       padding=((0, window - 1),))
  return pooled[..., 0] > 0


class ConvFrontEnd(nn.Module):
  """(B, T, F, C) features, (B, T) mask -> (B, T', F', C'), (B, T') mask.

  Attributes:
    features: output channels of each conv block.
    kernel_size: (time, freq) kernel of every convolution.
    freq_pool: max-pool size over frequency after each block (empty: 1s).
    time_pool: max-pool size over time after each block (empty: 1s, which
      keeps the frame rate).
    norm: layer norm over channels after each convolution.
    causal: pad time on the past side only, so no output sees later frames
      (the online variant; needs ``time_pool`` of 1s).
    dropout: dropout rate after each block.
    compute_dtype: activation dtype (params stay float32).
  """
  features: Sequence[int] = (16, 32)
  kernel_size: Sequence[int] = (3, 3)
  freq_pool: Sequence[int] = ()
  time_pool: Sequence[int] = ()
  norm: bool = True
  causal: bool = False
  dropout: float = 0.0
  compute_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array, *, deterministic: bool = True):
    n = len(self.features)
    fpool = _per_block(self.freq_pool, n, 'freq_pool')
    tpool = _per_block(self.time_pool, n, 'time_pool')
    kt, kf = (int(k) for k in self.kernel_size)
    if self.causal:
      if max(tpool) > 1:
        raise ValueError('config.model.time_pool must be all 1 for a causal (unidirectional) model')
      padding = ((kt - 1, 0), ((kf - 1) // 2, kf // 2))
    else:
      padding = 'SAME'
    x = x.astype(self.compute_dtype)
    for i, (width, fp, tp) in enumerate(zip(self.features, fpool, tpool)):
      x = x * mask[:, :, None, None].astype(x.dtype)
      x = nn.Conv(int(width), (kt, kf), padding=padding, dtype=self.compute_dtype,
                  param_dtype=jnp.float32, name=f'conv_{i}')(x)
      if self.norm:
        x = nn.LayerNorm(dtype=self.compute_dtype, param_dtype=jnp.float32, name=f'norm_{i}')(x)
      # Zero padded frames again (the conv bias made them non-zero): after the ReLU
      # everything is >= 0, so a zero never wins a max pool against a real frame.
      x = nn.relu(x) * mask[:, :, None, None].astype(x.dtype)
      if fp > 1 or tp > 1:
        x = nn.max_pool(x, (tp, fp), strides=(tp, fp), padding=((0, tp - 1), (0, fp - 1)))
        mask = pool_mask(mask, tp)
      x = nn.Dropout(self.dropout)(x, deterministic=deterministic)
    return x * mask[:, :, None, None].astype(x.dtype), mask


class CRNN(nn.Module):
  """(B, T, bins, channels) features -> (B, T, num_outputs) logits (frame rate kept).

  Attributes:
    num_outputs: logits per frame.
    conv_features, kernel_size, freq_pool, norm: the :class:`ConvFrontEnd`.
    input_projection: dense width between the CNN and the RNN (0: none).
    hidden_size, num_layers, cell, bidirectional, merge, residual, unroll:
      the :class:`mir_jax.nn.modules.RecurrentStack`; ``bidirectional=False``
      is the causal/online variant (its convolutions then look only back).
    dropout: dropout rate in the CNN, after the projection and between layers.
    compute_dtype: dtype of activations and matmuls.
  """
  num_outputs: int
  conv_features: Sequence[int] = (16, 32)
  kernel_size: Sequence[int] = (3, 3)
  freq_pool: Sequence[int] = (2, 2)
  norm: bool = True
  input_projection: int = 0
  hidden_size: int = 64
  num_layers: int = 1
  cell: str = 'lstm'
  bidirectional: bool = True
  merge: str = 'concat'
  residual: bool = False
  dropout: float = 0.0
  unroll: int = 1
  compute_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, batch, *, deterministic: bool = True) -> jax.Array:
    feats = check_features(batch)
    mask = batch_mask(batch, feats)
    x, _ = ConvFrontEnd(features=tuple(self.conv_features), kernel_size=tuple(self.kernel_size),
                        freq_pool=tuple(self.freq_pool), time_pool=(), norm=self.norm,
                        causal=not self.bidirectional, dropout=self.dropout,
                        compute_dtype=self.compute_dtype, name='cnn')(
                            feats, mask, deterministic=deterministic)
    x = x.reshape(x.shape[:2] + (-1,))
    return recurrent_head(self, x, batch.get('lengths'), deterministic=deterministic)


def build_crnn(cfg, num_outputs: int, compute_dtype) -> CRNN:
  """The registry builder of ``config.model.name = 'crnn'``."""
  return CRNN(
      num_outputs=num_outputs, conv_features=tuple(cfg.get('conv_features', (16, 32))),
      kernel_size=tuple(cfg.get('kernel_size', (3, 3))),
      freq_pool=tuple(cfg.get('freq_pool', (2, 2))), norm=bool(cfg.get('norm', True)),
      input_projection=int(cfg.get('input_projection', 0)),
      hidden_size=int(cfg.get('hidden_size', 64)), num_layers=int(cfg.get('num_layers', 1)),
      cell=str(cfg.get('cell', 'lstm')), bidirectional=bool(cfg.get('bidirectional', True)),
      merge=str(cfg.get('merge', 'concat')), residual=bool(cfg.get('residual', False)),
      dropout=float(cfg.get('dropout', 0.0)), unroll=int(cfg.get('unroll', 1)),
      compute_dtype=compute_dtype)
