"""Thin Flax linen wrappers: they hold the params and call the pure functions."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax

from mir_jax.nn import recurrent
from mir_jax.nn.cells import get_cell


class RecurrentStack(nn.Module):
  """Stacked (bi)directional recurrent layers over (B, T, F) inputs.

  Params live in ``layer_<i>`` entries laid out as :func:`recurrent.stack_init`
  makes them, so pure-function code and checkpoints share one format.
  Dropout between layers draws from the 'dropout' rng collection.
  """
  cell: str = 'lstm'
  hidden_size: int = 128
  num_layers: int = 1
  bidirectional: bool = True
  merge: str = 'concat'
  dropout: float = 0.0
  residual: bool = False
  unroll: int = 1
  compute_dtype: Any = None
  return_carry: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, lengths: jax.Array | None = None, *,
               deterministic: bool = True):
    cell = get_cell(self.cell)
    width = self.hidden_size * (2 if self.bidirectional and self.merge == 'concat' else 1)
    layers = []
    for index in range(self.num_layers):
      in_dim = x.shape[-1] if index == 0 else width

      def init(key, in_dim=in_dim):
        if self.bidirectional:
          return recurrent.bidirectional_init(key, cell, in_dim, self.hidden_size)
        return cell.init(key, in_dim, self.hidden_size)
      layers.append(self.param(f'layer_{index}', init))
    key = None
    if not deterministic and self.dropout > 0.0:
      key = self.make_rng('dropout')
    outputs, finals = recurrent.stack(
        cell, layers, x, lengths, bidirectional=self.bidirectional, merge=self.merge,
        dropout_rate=self.dropout, dropout_key=key, residual=self.residual,
        unroll=self.unroll, compute_dtype=self.compute_dtype)
    return (outputs, finals) if self.return_carry else outputs
