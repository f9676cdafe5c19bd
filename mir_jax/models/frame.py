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
    from mir_jax.nn.modules import RecurrentStack  # pylint: disable=g-import-not-at-top
    feats = batch['features']
    if feats.ndim != 4:
      raise ValueError(f"batch['features'] must be (batch, time, bins, channels), got shape {feats.shape}")
    x = feats.reshape(feats.shape[:2] + (-1,)).astype(self.compute_dtype)
    lengths: Optional[jax.Array] = batch.get('lengths')
    if self.input_projection > 0:
      x = nn.Dense(self.input_projection, dtype=self.compute_dtype, param_dtype=jnp.float32,
                   name='input_projection')(x)
      x = nn.relu(x)
      x = nn.Dropout(self.dropout)(x, deterministic=deterministic)
    x = RecurrentStack(cell=self.cell, hidden_size=self.hidden_size, num_layers=self.num_layers,
                       bidirectional=self.bidirectional, merge=self.merge, dropout=self.dropout,
                       residual=self.residual, unroll=self.unroll,
                       compute_dtype=self.compute_dtype, name='rnn')(
                           x, lengths, deterministic=deterministic)
    x = nn.Dropout(self.dropout)(x, deterministic=deterministic)
    return nn.Dense(self.num_outputs, dtype=self.compute_dtype, param_dtype=jnp.float32,
                    name='output')(x)
