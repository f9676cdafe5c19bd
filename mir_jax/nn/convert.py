"""Weight conversion from PyTorch and Flax recurrent layers to mir_jax params.

Users port trained models with these; the tests use them to check our numerics
against both libraries. Inputs are plain mappings of arrays (a PyTorch
``state_dict`` may hold tensors: anything ``np.asarray`` accepts after
``.detach().cpu()`` works), so this module imports neither library.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax.numpy as jnp
import numpy as np

from mir_jax.nn.cells import Params, get_cell

_TORCH_MODES = {'lstm': 'lstm', 'gru': 'gru', 'rnn_tanh': 'rnn', 'rnn_relu': 'rnn'}


def _np(value) -> np.ndarray:
  if hasattr(value, 'detach'):  # torch.Tensor, without importing torch
    value = value.detach().cpu().numpy()
  return np.asarray(value, dtype=np.float32)


def _torch_layer(state_dict: Mapping[str, Any], cell: str, layer: int,
                 reverse: bool) -> Params:
  suffix = f'_l{layer}' + ('_reverse' if reverse else '')
  try:
    w_ih = _np(state_dict['weight_ih' + suffix])
    w_hh = _np(state_dict['weight_hh' + suffix])
  except KeyError as e:
    raise ValueError(f'state_dict has no {e.args[0]!r}: is it a PyTorch nn.{cell.upper()} '
                     f'with that many layers/directions? keys: {sorted(state_dict)}') from None
  if 'weight_hr' + suffix in state_dict:
    raise ValueError('LSTMs with proj_size > 0 are not supported')
  hidden = w_hh.shape[1]
  zeros = np.zeros(w_hh.shape[0], np.float32)
  b_ih = _np(state_dict.get('bias_ih' + suffix, zeros))
  b_hh = _np(state_dict.get('bias_hh' + suffix, zeros))
  params = {'w_ih': jnp.asarray(w_ih.T), 'w_hh': jnp.asarray(w_hh.T)}
  if cell == 'gru':  # PyTorch's b_hn sits inside r * (W_hn h + b_hn): keep it apart
    params.update(b=jnp.asarray(b_ih), b_hh=jnp.asarray(b_hh))
  else:  # the two biases are simply added
    params['b'] = jnp.asarray(b_ih + b_hh)
  assert params['w_hh'].shape == (hidden, get_cell(cell).num_gates * hidden)
  return params


def from_torch(state_dict: Mapping[str, Any], cell: str = 'lstm', num_layers: int = 1,
               bidirectional: bool = False) -> list[Params]:
  """Converts a PyTorch ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` ``state_dict``.

  Args:
    state_dict: ``module.state_dict()`` of a ``batch_first`` or not (layout of
      weights is the same) ``nn.LSTM``, ``nn.GRU`` or ``nn.RNN``.
    cell: 'lstm', 'gru', 'rnn_tanh' or 'rnn_relu' (the module's nonlinearity).
    num_layers, bidirectional: as the PyTorch module was built.

  Returns:
    A list of per-layer params for :func:`mir_jax.nn.recurrent.stack`;
    bidirectional layers have the two directions stacked on axis 0.
  """
  get_cell(cell)
  if cell not in _TORCH_MODES:
    raise ValueError(f'no PyTorch equivalent for cell {cell!r}')
  layers = []
  for layer in range(num_layers):
    fwd = _torch_layer(state_dict, cell, layer, reverse=False)
    if bidirectional:
      bwd = _torch_layer(state_dict, cell, layer, reverse=True)
      fwd = {k: jnp.stack([fwd[k], bwd[k]]) for k in fwd}
    layers.append(fwd)
  return layers


def from_torch_lstm(state_dict: Mapping[str, Any], num_layers: int = 1,
                    bidirectional: bool = False) -> list[Params]:
  """``from_torch`` for ``nn.LSTM``: the common case of porting a model."""
  return from_torch(state_dict, 'lstm', num_layers, bidirectional)


def from_flax_lstm(params: Mapping[str, Any]) -> Params:
  """Converts ``flax.linen.OptimizedLSTMCell`` / ``LSTMCell`` params.

  Flax keeps one Dense per gate: input kernels ``i{i,f,g,o}`` (no bias) and
  recurrent ``h{i,f,g,o}`` (with bias). Note that Flax's carry is ``(c, h)``
  while ours is ``(h, c)``.
  """
  params = params.get('params', params)
  gates = 'ifgo'
  return {
      'w_ih': jnp.concatenate([jnp.asarray(params['i' + g]['kernel']) for g in gates], 1),
      'w_hh': jnp.concatenate([jnp.asarray(params['h' + g]['kernel']) for g in gates], 1),
      'b': jnp.concatenate([jnp.asarray(params['h' + g]['bias']) for g in gates]),
  }


def from_flax_gru(params: Mapping[str, Any]) -> Params:
  """Converts ``flax.linen.GRUCell`` params (input biases on ir/iz/in, recurrent on hn)."""
  params = params.get('params', params)
  hidden = params['hn']['kernel'].shape[0]
  zeros = jnp.zeros((hidden,), jnp.float32)
  return {
      'w_ih': jnp.concatenate([jnp.asarray(params['i' + g]['kernel']) for g in 'rzn'], 1),
      'w_hh': jnp.concatenate([jnp.asarray(params['h' + g]['kernel']) for g in 'rzn'], 1),
      'b': jnp.concatenate([jnp.asarray(params['i' + g]['bias']) for g in 'rzn']),
      'b_hh': jnp.concatenate([zeros, zeros, jnp.asarray(params['hn']['bias'])]),
  }
