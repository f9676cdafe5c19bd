"""Sequence-to-sequence model with attention: features in, token sequences out.

Encoder: bidirectional recurrent layers (``RecurrentStack``, one per layer)
with temporal downsampling between them ('pool': masked max over windows,
'conv': strided convolution, 'stack': concatenate neighbouring frames, 'none'),
so long audio gives a manageable number of encoder states.

Decoder (the tutorial's attention decoder): the first step reads the start
token's embedding and the initial state (a dense bridge from the encoder's
final forward and backward states). At every step the LSTM cell takes the
previous token's embedding (and, with ``input_feeding``, the previous context)
and its previous state; attention scores each encoder state against the new
hidden state; the context and hidden state are concatenated and passed through
a feed-forward layer that gives the next-token logits. ``attention='none'`` is
the encoder-decoder baseline: the context is always the encoder summary.

The decoder is written over plain arrays held by the module, so teacher forcing
is one ``lax.scan`` and decoding runs the same step inside
:mod:`mir_jax.nn.decoding`'s jitted loops.
"""

from __future__ import annotations

import functools
from typing import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from mir_jax.models.profiles import RHYTHM_HIDDEN, onset_autocorrelation
from mir_jax.nn import attention as attn_lib
from mir_jax.nn import cells, decoding
from mir_jax.nn.modules import RecurrentStack
from mir_jax.nn.recurrent import lengths_to_mask

DOWNSAMPLE = ('none', 'pool', 'conv', 'stack')


def downsampled_lengths(lengths: jax.Array, factor: int) -> jax.Array:
  """Valid frames after downsampling by ``factor`` (a partial window counts)."""
  return (lengths + factor - 1) // factor


def _pad_time(x: jax.Array, factor: int) -> jax.Array:
  extra = (-x.shape[1]) % factor
  return jnp.pad(x, ((0, 0), (0, extra), (0, 0))) if extra else x


class Seq2Seq(nn.Module):
  """Attention encoder-decoder over (B, T, F) or (B, T, bins, channels) features.

  Attributes:
    vocab_size: output tokens (including pad, start and end).
    embed_dim: token embedding width.
    encoder_hidden: units per direction of each encoder layer.
    encoder_layers: bidirectional encoder layers.
    encoder_cell: recurrent cell of the encoder ('lstm', 'gru', ...).
    downsample: 'none', 'pool', 'conv' or 'stack' between encoder layers.
    downsample_factor: time reduction at each downsampling.
    input_projection: width of a dense ReLU layer before the encoder (0: none).
    decoder_hidden: decoder LSTM units.
    attention: 'additive', 'dot', 'general', 'location' (additive that also sees
      the previous and cumulative weights) or 'none'.
    attention_dim: width of the additive attention's hidden layer.
    input_feeding: feed the previous context into the next decoder step.
    output_hidden: width of the feed-forward layer over [hidden; context].
    rhythm_features: > 0 adds this many clip-level tempo features (an MLP over
      :func:`~mir_jax.models.profiles.onset_autocorrelation` of the input) to
      that layer's input at every step: durations in beats need the tempo,
      which the recurrent encoder estimates poorly from frames alone.
    dropout: dropout on the encoder's layer inputs and the output layer.
    token_dropout: under teacher forcing in training, the probability that a
      previous token fed to the decoder is replaced by ``<pad>`` (word
      dropout); negative (the default) means the same rate as ``dropout``.
  """
  vocab_size: int
  embed_dim: int = 32
  encoder_hidden: int = 64
  encoder_layers: int = 2
  encoder_cell: str = 'lstm'
  downsample: str = 'pool'
  downsample_factor: int = 2
  input_projection: int = 0
  decoder_hidden: int = 128
  attention: str = 'additive'
  attention_dim: int = 64
  input_feeding: bool = True
  output_hidden: int = 128
  rhythm_features: int = 0
  dropout: float = 0.0
  token_dropout: float = -1.0
  unroll: int = 1

  def setup(self):
    if self.downsample not in DOWNSAMPLE:
      raise ValueError(f'config.model.downsample={self.downsample!r} is not one of {DOWNSAMPLE}')
    if self.attention not in attn_lib.KINDS:
      raise ValueError(f'config.model.attention={self.attention!r} is not one of {attn_lib.KINDS}')
    mem = 2 * self.encoder_hidden
    if self.attention == 'dot' and self.decoder_hidden != mem:
      raise ValueError(f"config.model.attention='dot' needs decoder_hidden == 2 * encoder_hidden "
                       f'({mem}), got {self.decoder_hidden}')
    if self.input_projection:
      self.in_proj = nn.Dense(self.input_projection)
    self.encoders = [RecurrentStack(cell=self.encoder_cell, hidden_size=self.encoder_hidden,
                                    num_layers=1, bidirectional=True, return_carry=True,
                                    unroll=self.unroll)
                     for i in range(self.encoder_layers)]
    if self.downsample == 'conv':
      self.convs = [nn.Conv(mem, (self.downsample_factor,), strides=(self.downsample_factor,),
                            padding='VALID')
                    for i in range(self.encoder_layers - 1)]
    self.drop = nn.Dropout(self.dropout)
    dense = nn.initializers.glorot_uniform()
    dh, ed = self.decoder_hidden, self.embed_dim
    self.embedding = self.param('embedding', nn.initializers.normal(1.0 / ed ** 0.5),
                                (self.vocab_size, ed))
    in_dim = ed + (mem if self.input_feeding else 0)
    self.decoder_lstm = self.param('decoder_lstm', lambda k: cells.lstm_init(k, in_dim, dh))
    self.bridge = self.param('bridge', lambda k: {'w': dense(k, (mem, 2 * dh)),
                                                  'b': jnp.zeros((2 * dh,))})
    if self.attention == 'additive':
      self.attn_params = self.param(
          'attention', lambda k: attn_lib.additive_init(k, dh, mem, self.attention_dim))
    elif self.attention == 'location':
      self.attn_params = self.param(
          'attention', lambda k: attn_lib.location_init(k, dh, mem, self.attention_dim))
    elif self.attention == 'general':
      self.attn_params = self.param('attention', lambda k: attn_lib.general_init(k, dh, mem))
    else:
      self.attn_params = None
    if self.rhythm_features > 0:
      self.rhythm_hidden = nn.Dense(RHYTHM_HIDDEN)
      self.rhythm_out = nn.Dense(self.rhythm_features)
    k1, k2 = 'output_hidden', 'output'
    out_in = dh + mem + max(int(self.rhythm_features), 0)
    self.out_hidden = self.param(k1, lambda k: {'w': dense(k, (out_in, self.output_hidden)),
                                                'b': jnp.zeros((self.output_hidden,))})
    self.out = self.param(k2, lambda k: {'w': dense(k, (self.output_hidden, self.vocab_size)),
                                         'b': jnp.zeros((self.vocab_size,))})

  # --------------------------------------------------------------------------- encoder

  def _downsample(self, index: int, x: jax.Array, lengths: jax.Array):
    f = self.downsample_factor
    if self.downsample == 'none' or f <= 1:
      return x, lengths
    new_lengths = downsampled_lengths(lengths, f)
    x = _pad_time(x, f)
    b, t, c = x.shape
    valid = lengths_to_mask(lengths, t)[..., None]
    if self.downsample == 'pool':
      x = jnp.where(valid, x, -jnp.inf).reshape(b, t // f, f, c).max(axis=2)
    elif self.downsample == 'stack':
      x = jnp.where(valid, x, 0).reshape(b, t // f, f * c)
    else:
      x = self.convs[index](jnp.where(valid, x, 0))
    keep = lengths_to_mask(new_lengths, x.shape[1])[..., None]
    return jnp.where(keep, x, 0), new_lengths

  def encode(self, features: jax.Array, lengths: jax.Array | None = None, *,
             deterministic: bool = True) -> dict:
    """Encoder states: {'memory' (B,S,M), 'keys', 'mask' (B,S), 'summary' (B,M), 'lengths'},
    and 'rhythm' (B, rhythm_features) when the model has rhythm features."""
    x = features.reshape(features.shape[:2] + (-1,)).astype(jnp.float32)
    if lengths is None:
      lengths = jnp.full((x.shape[0],), x.shape[1], jnp.int32)
    lengths = jnp.asarray(lengths, jnp.int32)
    rhythm = None
    if self.rhythm_features > 0:
      frames = features if features.ndim == 4 else features[..., None]
      acf = onset_autocorrelation(frames, lengths_to_mask(lengths, x.shape[1]))
      rhythm = nn.relu(self.rhythm_out(nn.relu(self.rhythm_hidden(acf))))
    if self.input_projection:
      x = self.drop(nn.relu(self.in_proj(x)), deterministic=deterministic)
    finals = None
    for i, encoder in enumerate(self.encoders):
      if i > 0:
        x, lengths = self._downsample(i - 1, x, lengths)
        x = self.drop(x, deterministic=deterministic)
      x, finals = encoder(x, lengths)
    h = cells.get_cell(self.encoder_cell).carry_output(finals[-1])   # (2, B, H)
    summary = jnp.concatenate([h[0], h[1]], axis=-1)
    mask = lengths_to_mask(lengths, x.shape[1])
    keys = x
    if self._projects_keys:
      keys = attn_lib.additive_keys(self.attn_params, x)
    encoded = {'memory': x, 'keys': keys, 'mask': mask, 'summary': summary, 'lengths': lengths}
    if rhythm is not None:
      encoded['rhythm'] = rhythm
    return encoded

  # --------------------------------------------------------------------------- decoder

  @property
  def _projects_keys(self) -> bool:
    # Additive scores project the keys once per sequence, not once per decoder step.
    return self.attention in ('additive', 'location')

  def initial_state(self, encoded: Mapping[str, jax.Array]) -> dict:
    """Decoder state before the first step: LSTM carry from the bridge, zero context."""
    hc = jnp.tanh(encoded['summary'] @ self.bridge['w'] + self.bridge['b'])
    h, c = jnp.split(hc, 2, axis=-1)
    state = {'carry': (h, c), 'context': jnp.zeros_like(encoded['summary'])}
    if self.attention == 'location':
      zeros = jnp.zeros(encoded['mask'].shape, jnp.float32)
      state['weights'], state['cumulative'] = zeros, zeros
    return state

  def _step(self, encoded, state, tokens):
    x = self.embedding[tokens]
    if self.input_feeding:
      x = jnp.concatenate([x, state['context']], axis=-1)
    carry, h = cells.lstm_step(self.decoder_lstm, state['carry'], x)
    if self.attention == 'none':
      context = encoded['summary']
      weights = attn_lib.last_valid_weights(encoded['mask'])
    else:
      previous = ((state['weights'], state['cumulative']) if self.attention == 'location'
                  else None)
      context, weights = attn_lib.attend(self.attention, self.attn_params, h, encoded['keys'],
                                         encoded['memory'], encoded['mask'],
                                         projected_keys=self._projects_keys,
                                         previous=previous)
    parts = [h, context] + ([encoded['rhythm']] if 'rhythm' in encoded else [])
    hidden = jnp.tanh(jnp.concatenate(parts, axis=-1) @ self.out_hidden['w']
                      + self.out_hidden['b'])
    new_state = {'carry': carry, 'context': context}
    if self.attention == 'location':
      new_state['weights'] = weights
      new_state['cumulative'] = state['cumulative'] + weights
    return hidden, new_state, weights

  def _logits(self, hidden, deterministic):
    hidden = self.drop(hidden, deterministic=deterministic)
    return hidden @ self.out['w'] + self.out['b']

  def decode_step(self, encoded: Mapping[str, jax.Array], state: dict, tokens: jax.Array):
    """One decoding step: ``(log_probs (N, V), new_state, attention weights (N, S))``."""
    hidden, state, weights = self._step(encoded, state, tokens)
    return jax.nn.log_softmax(self._logits(hidden, True)), state, weights

  def __call__(self, features, lengths=None, targets_in=None, *, deterministic: bool = True,
               return_attention: bool = False):
    """Teacher forcing: logits (B, L, V) of ``targets_out`` given ``targets_in`` (B, L).

    ``features`` may also be a batch dict with 'features', 'lengths' and 'targets_in'.
    """
    if isinstance(features, Mapping):
      batch = features
      features, lengths, targets_in = batch['features'], batch.get('lengths'), batch['targets_in']
    if targets_in is None:
      raise ValueError('Seq2Seq needs targets_in (teacher forcing); use decode() to generate')
    encoded = self.encode(features, lengths, deterministic=deterministic)
    targets_in = jnp.asarray(targets_in, jnp.int32)
    rate = self.dropout if self.token_dropout < 0 else self.token_dropout
    if rate > 0 and not deterministic:
      # Word dropout: previous tokens after the start token become <pad> (id 0, an
      # "unknown" embedding) at random, so the decoder cannot lean on its own
      # history alone and has to read the audio through the context.
      keep = jax.random.bernoulli(self.make_rng('dropout'), 1.0 - rate,
                                  targets_in.shape)
      keep = keep.at[:, 0].set(True)
      targets_in = jnp.where(keep, targets_in, 0)

    def body(state, tokens):
      hidden, state, weights = self._step(encoded, state, tokens)
      return state, (hidden, weights)

    _, (hidden, weights) = jax.lax.scan(body, self.initial_state(encoded),
                                        jnp.swapaxes(targets_in, 0, 1),
                                        unroll=self.unroll)
    logits = self._logits(jnp.swapaxes(hidden, 0, 1), deterministic)
    if return_attention:
      return logits, jnp.swapaxes(weights, 0, 1)
    return logits


# ----------------------------------------------------------------------------- decoding

def decode(model: Seq2Seq, variables, features: jax.Array, lengths: jax.Array | None, *,
           max_len: int, start_id: int, end_id: int, pad_id: int = 0, beam_size: int = 1,
           length_penalty: float = 0.0, method: str = 'greedy') -> decoding.DecodeResult:
  """Greedy (``method='greedy'``) or beam decoding of a batch; jittable.

  The encoder runs once; for beam search its outputs are tiled over the beams
  once, outside the loop, and the step function closes over them, so only the
  decoder state is reordered between beams.
  """
  if method not in ('greedy', 'beam'):
    raise ValueError(f"decoding method must be 'greedy' or 'beam', got {method!r}")
  encoded = model.apply(variables, features, lengths, method=Seq2Seq.encode)
  init = model.apply(variables, encoded, method=Seq2Seq.initial_state)
  k = beam_size if method == 'beam' else 1
  memory = decoding.tile_beams(encoded, k) if k > 1 else encoded

  def step(state, ids):
    return model.apply(variables, memory, state, ids, method=Seq2Seq.decode_step)

  if method == 'greedy':
    return decoding.greedy_decode(step, init, start_id, end_id, max_len, pad_id=pad_id)
  return decoding.beam_search(step, init, start_id, end_id, max_len, beam_size=beam_size,
                              length_penalty=length_penalty, pad_id=pad_id)


def make_decode_fn(model: Seq2Seq, **kwargs):
  """``jit(decode)`` with the model and decoding options fixed: ``fn(variables, features, lengths)``."""
  return jax.jit(functools.partial(decode, model, **kwargs))


# ----------------------------------------------------------------------------- loss

def sequence_cross_entropy(logits: jax.Array, targets: jax.Array, mask: jax.Array,
                           label_smoothing: float = 0.0) -> tuple[jax.Array, dict]:
  """Mean token cross-entropy over ``mask`` with optional label smoothing.

  Returns ``(loss, {'nll', 'token_accuracy', 'sequence_accuracy'})``; ``nll`` is
  the unsmoothed cross-entropy, so runs with different smoothing compare.
  """
  logits = logits.astype(jnp.float32)
  mask = jnp.asarray(mask, jnp.float32)
  onehot = jax.nn.one_hot(targets, logits.shape[-1])
  soft = optax.smooth_labels(onehot, label_smoothing) if label_smoothing else onehot
  per_token = optax.softmax_cross_entropy(logits, soft)
  count = jnp.maximum(mask.sum(), 1.0)
  loss = (per_token * mask).sum() / count
  nll = (optax.softmax_cross_entropy(logits, onehot) * mask).sum() / count
  correct = (jnp.argmax(logits, -1) == targets) | (mask == 0)
  token_acc = ((jnp.argmax(logits, -1) == targets) * mask).sum() / count
  has = mask.sum(-1) > 0
  seq_acc = (jnp.all(correct, axis=-1) & has).sum() / jnp.maximum(has.sum(), 1)
  return loss, {'nll': nll, 'token_accuracy': token_acc, 'sequence_accuracy': seq_acc}
