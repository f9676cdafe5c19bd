"""Clip models: one output vector per track (key, tags), with a configurable aggregation.

``ClipModel`` (registered as ``clip_cnn`` and ``clip_crnn``): the
:class:`~mir_jax.models.crnn.ConvFrontEnd` (pooling over frequency and
optionally time), each frame's (freq, channels) flattened and projected,
optionally recurrent layers over the frame sequence (the CRNN), then one
aggregation over time chosen by ``config.model.aggregation``, so the
aggregation is an ablation of one config key:

* ``max``: global max pooling over real frames;
* ``mean``: global mean pooling over real frames;
* ``strided``: strided 1-D convolutions over time (each halves the frame
  rate), then the mean over the remaining real frames;
* ``recurrent``: the final states of a bidirectional recurrent layer (forward
  state at the last real frame, backward state at the first), concatenated;
* ``attention``: attention pooling, a learned score per frame, softmax over
  real frames, and the weighted mean.

Then dropout, an optional hidden dense layer, and the output logits (B, K).

``pitch_classes`` > 0 makes the model transposition-equivariant (for key
estimation on a CQT whose lowest bin is a C): the CNN's frequency bins are
folded into pitch classes (octaves become channels), a circular convolution
over the pitch-class circle embeds each class with the whole chroma around
it, the recurrent layers and the aggregation run per class (classes folded
into the batch, weights shared), and one shared dense layer gives
``num_outputs // pitch_classes`` logits per class, laid out mode-major
(``mode * pitch_classes + class``, the order of ``mir_jax.data.vocab`` keys).
With any aggregation, transposing an octave-periodic input by a semitone
rotates the logits of every mode exactly.

``pitch_profile`` > 0 adds transposition-invariant tonal features for tags
such as major/minor mode, which a CNN that pools frequency cannot see: the
input (a CQT with 12 bins per octave, any lowest note) is folded into a
12-bin pitch-class profile averaged over real frames, a small MLP reads each of
its 12 rotations, and the maximum over rotations (``pitch_profile`` values)
joins the pooled clip embedding. The maximum makes the features the same for
any transposition, so a "minor relative to its tonic" detector is learned
once instead of once per key.

``rhythm_profile`` > 0 adds tempo and note-density features, which attention or
max pooling over frames cannot express (a tempo is a period, not a frame's
content): an onset-strength envelope per frequency band (the half-wave
rectified frame-to-frame rise of the input, averaged over the band), its
autocorrelation over lags of 1 to :data:`RHYTHM_LAGS` frames (normalised by
its energy, over real frames only: the tempogram summary that classic tempo
estimators read) and the envelope's log mean and log std per band, read by a
small MLP (``rhythm_profile`` values) that joins the pooled clip embedding.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from mir_jax.models.crnn import ConvFrontEnd, batch_mask, check_features, pool_mask
from mir_jax.models.profiles import (RHYTHM_HIDDEN, RotationInvariant, masked_mean,
                                     onset_autocorrelation, pitch_class_profile)

AGGREGATIONS = ('max', 'mean', 'strided', 'recurrent', 'attention')


def masked_max(x: jax.Array, mask: jax.Array) -> jax.Array:
  """(B, T, D), (B, T) -> (B, D) max over real frames (0 for a row without any)."""
  neg = jnp.asarray(jnp.finfo(x.dtype).min, x.dtype)
  out = jnp.where(mask[..., None], x, neg).max(axis=1)
  return jnp.where(mask.any(axis=1)[:, None], out, jnp.zeros_like(out))


def masked_softmax(scores: jax.Array, mask: jax.Array) -> jax.Array:
  """Softmax over axis 1 of (B, T) ``scores`` restricted to ``mask`` (all 0 for an empty row)."""
  # No infinities anywhere, so an empty row has finite values and zero gradients.
  scores = jnp.where(mask, scores.astype(jnp.float32), 0.0)
  peak = jax.lax.stop_gradient(jnp.max(jnp.where(mask, scores, -1e30), axis=1, keepdims=True))
  peak = jnp.where(mask.any(axis=1, keepdims=True), peak, 0.0)
  weights = jnp.where(mask, jnp.exp(scores - peak), 0.0)
  return weights / jnp.maximum(weights.sum(axis=1, keepdims=True), 1e-30)


class ClipModel(nn.Module):
  """(B, T, bins, channels) features -> (B, num_outputs) logits.

  Attributes:
    num_outputs: logits per clip.
    aggregation: one of :data:`AGGREGATIONS`.
    conv_features, kernel_size, freq_pool, time_pool, norm: the
      :class:`ConvFrontEnd`.
    embed_size: dense width of each frame's embedding after the CNN.
    pitch_classes: > 0 folds frequency into this many pitch classes and
      shares the output weights across them (see the module docstring).
    pitch_profile: > 0 adds this many transposition-invariant pitch-profile
      features to the pooled embedding (see the module docstring).
    rhythm_profile: > 0 adds this many tempo / note-density features computed
      from onset-envelope autocorrelations (see the module docstring).
    rnn_layers: recurrent layers over the frames before the aggregation
      (0: a plain CNN; > 0: a CRNN).
    hidden_size: units per direction of the recurrent layers (CRNN and
      ``recurrent`` aggregation).
    cell: recurrent cell ('lstm', 'gru', 'rnn_tanh', 'rnn_relu').
    strided_layers: stride-2 convolutions of the ``strided`` aggregation.
    attention_size: hidden width of the ``attention`` score.
    dense_size: hidden dense layer before the output (0: none); with
      ``pitch_classes`` it runs per class with shared weights.
    dropout: dropout rate (CNN blocks, before the output).
    unroll: scan unroll factor.
    compute_dtype: dtype of activations and matmuls.
  """
  num_outputs: int
  aggregation: str = 'mean'
  conv_features: Sequence[int] = (16, 32, 64)
  kernel_size: Sequence[int] = (3, 3)
  freq_pool: Sequence[int] = (2, 2, 2)
  time_pool: Sequence[int] = ()
  norm: bool = True
  embed_size: int = 64
  pitch_classes: int = 0
  pitch_profile: int = 0
  rhythm_profile: int = 0
  rnn_layers: int = 0
  hidden_size: int = 64
  cell: str = 'gru'
  strided_layers: int = 2
  attention_size: int = 32
  dense_size: int = 0
  dropout: float = 0.0
  unroll: int = 1
  compute_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, batch, *, deterministic: bool = True) -> jax.Array:
    from mir_jax.nn.modules import RecurrentStack  # pylint: disable=g-import-not-at-top
    if self.aggregation not in AGGREGATIONS:
      raise ValueError(f'config.model.aggregation={self.aggregation!r} is not one of {AGGREGATIONS}')
    dense = lambda n, name: nn.Dense(n, dtype=self.compute_dtype, param_dtype=jnp.float32,  # pylint: disable=unnecessary-lambda-assignment
                                     name=name)
    for name in ('pitch_profile', 'rhythm_profile'):
      if getattr(self, name) > 0 and self.pitch_classes > 0:
        raise ValueError(f'config.model.{name} and config.model.pitch_classes exclude each '
                         'other (the per-class head has no place for clip-level features)')
    feats = check_features(batch)
    mask = batch_mask(batch, feats)
    profile = (RotationInvariant(self.pitch_profile, name='pitch_profile')(
        pitch_class_profile(feats, mask)) if self.pitch_profile > 0 else None)
    rhythm = None
    if self.rhythm_profile > 0:
      acf = onset_autocorrelation(feats, mask)
      r = nn.relu(nn.Dense(RHYTHM_HIDDEN, name='rhythm_hidden')(acf))
      rhythm = nn.relu(nn.Dense(self.rhythm_profile, name='rhythm_out')(r))
    x, mask = ConvFrontEnd(features=tuple(self.conv_features), kernel_size=tuple(self.kernel_size),
                           freq_pool=tuple(self.freq_pool), time_pool=tuple(self.time_pool),
                           norm=self.norm, dropout=self.dropout, compute_dtype=self.compute_dtype,
                           name='cnn')(feats, mask, deterministic=deterministic)
    classes = int(self.pitch_classes)
    if classes > 0:
      b, t, f, c = x.shape
      if f % classes or self.num_outputs % classes:
        raise ValueError(f'config.model.pitch_classes={classes} must divide the CNN output bins '
                         f'({f}) and the number of outputs ({self.num_outputs})')
      # (B, T, octaves, classes, C) -> (B*T, classes, octaves*C): octaves become channels.
      x = x.reshape(b, t, f // classes, classes, c).transpose(0, 1, 3, 2, 4)
      x = x.reshape(b * t, classes, (f // classes) * c)
      x = nn.relu(nn.Conv(self.embed_size, (classes,), padding='CIRCULAR', dtype=self.compute_dtype,
                          param_dtype=jnp.float32, name='embed')(x))
      # Recurrent layers and the aggregation run per class with shared weights
      # (classes folded into the batch), so every aggregation stays equivariant.
      x = x.reshape(b, t, classes, self.embed_size).transpose(0, 2, 1, 3)
      x = x.reshape(b * classes, t, self.embed_size)
      mask = jnp.repeat(mask, classes, axis=0)
    else:
      x = nn.relu(dense(self.embed_size, 'embed')(x.reshape(x.shape[:2] + (-1,))))
    lengths = mask.sum(axis=1).astype(jnp.int32)
    if self.rnn_layers > 0:
      x = RecurrentStack(cell=self.cell, hidden_size=self.hidden_size, num_layers=self.rnn_layers,
                         bidirectional=True, compute_dtype=self.compute_dtype, unroll=self.unroll,
                         name='rnn')(x, lengths, deterministic=deterministic)

    if self.aggregation == 'max':
      pooled = masked_max(x, mask)
    elif self.aggregation == 'mean':
      pooled = masked_mean(x, mask)
    elif self.aggregation == 'strided':
      for i in range(self.strided_layers):
        x = x * mask[..., None].astype(x.dtype)
        # Explicit (1, 1) padding: output i is centred on input frame 2i for any length.
        x = nn.relu(nn.Conv(x.shape[-1], (3,), strides=(2,), padding=((1, 1),),
                            dtype=self.compute_dtype, param_dtype=jnp.float32,
                            name=f'strided_{i}')(x))
        mask = pool_mask(mask, 2)
      pooled = masked_mean(x, mask)
    elif self.aggregation == 'recurrent':
      _, finals = RecurrentStack(cell=self.cell, hidden_size=self.hidden_size, num_layers=1,
                                 bidirectional=True, compute_dtype=self.compute_dtype,
                                 unroll=self.unroll, return_carry=True, name='summary')(
                                     x, lengths, deterministic=deterministic)
      final = finals[-1]
      h = final[0] if isinstance(final, (tuple, list)) else final  # LSTM carries are (h, c)
      pooled = jnp.concatenate([h[0], h[1]], axis=-1)  # (forward, backward) directions
    else:  # attention
      scores = dense(1, 'attention_score')(nn.tanh(dense(self.attention_size, 'attention_hidden')(x)))
      weights = masked_softmax(scores[..., 0], mask)
      pooled = (x * weights[..., None].astype(x.dtype)).sum(axis=1)

    if classes > 0:
      pooled = pooled.reshape(-1, classes, pooled.shape[-1])  # (B, classes, D)

    if profile is not None:
      pooled = jnp.concatenate([pooled, profile.astype(pooled.dtype)], axis=-1)
    if rhythm is not None:
      pooled = jnp.concatenate([pooled, rhythm.astype(pooled.dtype)], axis=-1)
    pooled = nn.Dropout(self.dropout)(pooled, deterministic=deterministic)
    if self.dense_size > 0:
      pooled = nn.relu(dense(self.dense_size, 'hidden')(pooled))
      pooled = nn.Dropout(self.dropout)(pooled, deterministic=deterministic)
    if classes > 0:  # one dense layer shared by the classes: (B, classes, modes)
      logits = dense(self.num_outputs // classes, 'output')(pooled)
      return logits.transpose(0, 2, 1).reshape(pooled.shape[0], self.num_outputs)
    return dense(self.num_outputs, 'output')(pooled)


def build_clip_model(cfg, num_outputs: int, compute_dtype) -> ClipModel:
  """The registry builder of ``config.model.name`` 'clip_cnn' / 'clip_crnn'."""
  aggregation = str(cfg.get('aggregation', 'mean'))
  if aggregation not in AGGREGATIONS:
    raise ValueError(f'config.model.aggregation={aggregation!r} is not one of {AGGREGATIONS}')
  default_rnn = 1 if cfg.get('name', '') == 'clip_crnn' else 0
  return ClipModel(
      num_outputs=num_outputs, aggregation=aggregation,
      conv_features=tuple(cfg.get('conv_features', (16, 32, 64))),
      kernel_size=tuple(cfg.get('kernel_size', (3, 3))),
      freq_pool=tuple(cfg.get('freq_pool', (2, 2, 2))),
      time_pool=tuple(cfg.get('time_pool', ())), norm=bool(cfg.get('norm', True)),
      embed_size=int(cfg.get('embed_size', 64)),
      pitch_classes=int(cfg.get('pitch_classes', 0)),
      pitch_profile=int(cfg.get('pitch_profile', 0)),
      rhythm_profile=int(cfg.get('rhythm_profile', 0)),
      rnn_layers=int(cfg.get('rnn_layers', default_rnn)),
      hidden_size=int(cfg.get('hidden_size', 64)), cell=str(cfg.get('cell', 'gru')),
      strided_layers=int(cfg.get('strided_layers', 2)),
      attention_size=int(cfg.get('attention_size', 32)), dense_size=int(cfg.get('dense_size', 0)),
      dropout=float(cfg.get('dropout', 0.0)), unroll=int(cfg.get('unroll', 1)),
      compute_dtype=compute_dtype)
