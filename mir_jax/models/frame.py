"""Frame models: one output vector per input frame (onsets, chords, beats).

``FrameRNN`` (registered as ``blstm``): flatten each frame's (bins, channels),
an optional dense input projection, the recurrent stack from
:mod:`mir_jax.nn.modules`, and a dense output layer per frame.
"""

from __future__ import annotations

from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from mir_jax.nn.modules import RecurrentStack


class FrameRNN(nn.Module):
  """(B, T, bins, channels) features -> (B, T, num_outputs) logits.

  Attributes:
    num_outputs: logits per frame.
    hidden_size: units per direction of each recurrent layer.
    num_layers: recurrent layers.
    cell: 'lstm', 'gru', 'rnn_tanh' or 'rnn_relu'.
    bidirectional: run each layer both ways and merge.
    merge: 'concat' or 'sum' for the two directions.
    input_projection: width of a dense layer before the RNN (0: none).
    dropout: dropout rate on the projection and between recurrent layers.
    residual: residual connections between recurrent layers of equal width.
    unroll: scan unroll factor (speed/compile-time trade-off).
    compute_dtype: dtype of activations and matmuls (params stay float32).
  """
  num_outputs: int
  hidden_size: int = 64
  num_layers: int = 2
  cell: str = 'lstm'
  bidirectional: bool = True
  merge: str = 'concat'
  input_projection: int = 0
  dropout: float = 0.0
  residual: bool = False
  unroll: int = 1
  compute_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, batch, *, deterministic: bool = True) -> jax.Array:
    feats = batch['features']
    if feats.ndim != 4:
      raise ValueError(f"batch['features'] must be (batch, time, bins, channels), got shape {feats.shape}")
    x = feats.reshape(feats.shape[:2] + (-1,)).astype(self.compute_dtype)
    return recurrent_head(self, x, batch.get('lengths'), deterministic=deterministic)


def recurrent_head(module: nn.Module, x: jax.Array, lengths: Optional[jax.Array], *,
                   deterministic: bool) -> jax.Array:
  """Optional dense projection, the recurrent stack, and a dense output per frame.

  Called from inside ``module``'s compact ``__call__`` (FrameRNN, CRNN), so the
  layers are ``module``'s children ('input_projection', 'rnn', 'output') and
  read its hyperparameters of the same names.
  """
  m = module
  if m.input_projection > 0:
    x = nn.Dense(m.input_projection, dtype=m.compute_dtype, param_dtype=jnp.float32,
                 name='input_projection')(x)
    x = nn.relu(x)
    x = nn.Dropout(m.dropout)(x, deterministic=deterministic)
  x = RecurrentStack(cell=m.cell, hidden_size=m.hidden_size, num_layers=m.num_layers,
                     bidirectional=m.bidirectional, merge=m.merge, dropout=m.dropout,
                     residual=m.residual, unroll=m.unroll, compute_dtype=m.compute_dtype,
                     name='rnn')(x, lengths, deterministic=deterministic)
  x = nn.Dropout(m.dropout)(x, deterministic=deterministic)
  return nn.Dense(m.num_outputs, dtype=m.compute_dtype, param_dtype=jnp.float32,
                  name='output')(x)
