"""Model builders by name: the only place that reads ``config.model``.

``build_model(config.model, num_outputs=task.num_outputs, compute_dtype=...)``
returns a Flax module whose ``__call__(batch, *, deterministic)`` returns logits.
``'seq2seq'`` builds :class:`mir_jax.models.seq2seq.Seq2Seq` (teacher-forced
logits; evaluation decodes with :func:`mir_jax.models.seq2seq.decode`).
"""

from __future__ import annotations

from typing import Any, Callable

import jax.numpy as jnp

from mir_jax.models import clip, crnn
from mir_jax.models.frame import FrameRNN
from mir_jax.models.seq2seq import Seq2Seq

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16, 'float16': jnp.float16}


def _frame_rnn(cfg, num_outputs: int, compute_dtype) -> FrameRNN:
  return FrameRNN(
      num_outputs=num_outputs, hidden_size=int(cfg.hidden_size), num_layers=int(cfg.num_layers),
      cell=str(cfg.cell), bidirectional=bool(cfg.bidirectional), merge=str(cfg.get('merge', 'concat')),
      input_projection=int(cfg.get('input_projection', 0)), dropout=float(cfg.get('dropout', 0.0)),
      residual=bool(cfg.get('residual', False)), unroll=int(cfg.get('unroll', 1)),
      compute_dtype=compute_dtype)


def _seq2seq(cfg, num_outputs: int, compute_dtype) -> Seq2Seq:
  """Attention encoder-decoder; ``num_outputs`` is the token vocabulary size.

  The decoder runs in float32 (``compute_dtype`` is not used by this model).
  """
  del compute_dtype
  return Seq2Seq(
      vocab_size=num_outputs, embed_dim=int(cfg.get('embed_dim', 32)),
      encoder_hidden=int(cfg.get('encoder_hidden', 64)),
      encoder_layers=int(cfg.get('encoder_layers', 2)),
      encoder_cell=str(cfg.get('encoder_cell', 'lstm')),
      downsample=str(cfg.get('downsample', 'pool')),
      downsample_factor=int(cfg.get('downsample_factor', 2)),
      input_projection=int(cfg.get('input_projection', 0)),
      decoder_hidden=int(cfg.get('decoder_hidden', 128)),
      attention=str(cfg.get('attention', 'additive')),
      attention_dim=int(cfg.get('attention_dim', 64)),
      input_feeding=bool(cfg.get('input_feeding', True)),
      output_hidden=int(cfg.get('output_hidden', 128)),
      rhythm_features=int(cfg.get('rhythm_features', 0)),
      dropout=float(cfg.get('dropout', 0.0)), unroll=int(cfg.get('unroll', 1)))


MODELS: dict[str, Callable[..., Any]] = {
    'blstm': _frame_rnn,      # bidirectional LSTM frame model (cell/bidirectional configurable)
    'frame_rnn': _frame_rnn,  # the same builder under its generic name
    'crnn': crnn.build_crnn,  # CNN front end over (time, freq) then recurrent layers
    'clip_cnn': clip.build_clip_model,  # CNN + aggregation over time (config.model.aggregation)
    'clip_crnn': clip.build_clip_model,  # CRNN + aggregation over time
    'seq2seq': _seq2seq,      # attention encoder-decoder over features -> token sequences
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
