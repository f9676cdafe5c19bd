"""Model builders by name: the only place that reads ``config.model``.

``build_model(config.model, num_outputs=task.num_outputs, compute_dtype=...)``
returns a Flax module whose ``__call__(batch, *, deterministic)`` returns logits.
Seq2seq models are built by their own task (see mir_jax/models/seq2seq.py).
"""

from __future__ import annotations

from typing import Any, Callable

import jax.numpy as jnp

from mir_jax.models import clip, crnn
from mir_jax.models.frame import FrameRNN

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16, 'float16': jnp.float16}


def _frame_rnn(cfg, num_outputs: int, compute_dtype) -> FrameRNN:
  return FrameRNN(
      num_outputs=num_outputs, hidden_size=int(cfg.hidden_size), num_layers=int(cfg.num_layers),
      cell=str(cfg.cell), bidirectional=bool(cfg.bidirectional), merge=str(cfg.get('merge', 'concat')),
      input_projection=int(cfg.get('input_projection', 0)), dropout=float(cfg.get('dropout', 0.0)),
      residual=bool(cfg.get('residual', False)), unroll=int(cfg.get('unroll', 1)),
      compute_dtype=compute_dtype)


MODELS: dict[str, Callable[..., Any]] = {
    'blstm': _frame_rnn,      # bidirectional LSTM frame model (cell/bidirectional configurable)
    'frame_rnn': _frame_rnn,  # the same builder under its generic name
    'crnn': crnn.build_crnn,  # CNN front end over (time, freq) then recurrent layers
    'clip_cnn': clip.build_clip_model,  # CNN + aggregation over time (config.model.aggregation)
    'clip_crnn': clip.build_clip_model,  # CRNN + aggregation over time
}


def dtype_from_name(name: str):
  """The jnp dtype for ``config.train.compute_dtype``."""
  if name not in DTYPES:
    raise ValueError(f'config.train.compute_dtype={name!r} is not one of {sorted(DTYPES)}')
  return DTYPES[name]


def build_model(model_config, *, num_outputs: int, compute_dtype: str = 'float32'):
  """The Flax module named by ``model_config.name``."""
  name = model_config.name
  if name not in MODELS:
    raise ValueError(f'config.model.name={name!r} is not one of {sorted(MODELS)}')
  return MODELS[name](model_config, num_outputs, dtype_from_name(compute_dtype))
