"""Attention as pure functions: scores, masked softmax and the context vector.

A decoder state (the *query*, (B, Hd)) is scored against every encoder state
(the *keys*, (B, S, He)); a softmax restricted to the valid encoder frames turns
the scores into weights, and the weighted sum of the *values* is the context.

Score functions (Bahdanau et al., 2015; Luong et al., 2015):

* ``additive``: ``v . tanh(W_q q + W_k k)``
* ``dot``:      ``q . k`` (needs Hd == He)
* ``general``:  ``q . (W k)`` computed as ``(q W) . k`` (one product per step)
* ``location``: ``v . tanh(W_q q + W_k k + U (F * [a_prev, a_cum]))``, additive
  attention that also sees a convolution of the previous step's weights and of
  their running sum (Chorowski et al., 2015): where it looked last and what it
  has covered, so it can move forward along the audio instead of finding its
  place from the content alone.
* ``none``:     no scores; the context is the values' last valid state (the
  tutorial's encoder-decoder without attention, kept for the ablation).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

KINDS = ('additive', 'dot', 'general', 'location', 'none')


def additive_init(key, query_dim: int, key_dim: int, attention_dim: int,
                  dtype=jnp.float32) -> dict:
  """Params of Bahdanau attention: ``w_q`` (Hd, A), ``w_k`` (He, A), ``b`` (A,), ``v`` (A,)."""
  kq, kk, kv = jax.random.split(key, 3)
  glorot = jax.nn.initializers.glorot_uniform()
  return {
      'w_q': glorot(kq, (query_dim, attention_dim), dtype),
      'w_k': glorot(kk, (key_dim, attention_dim), dtype),
      'b': jnp.zeros((attention_dim,), dtype),
      'v': jax.random.uniform(kv, (attention_dim,), dtype, -1.0, 1.0) / jnp.sqrt(attention_dim),
  }


def additive_keys(params: dict, keys: jax.Array) -> jax.Array:
  """``W_k k + b`` for all encoder states (B, S, A): computed once per sequence."""
  return keys @ params['w_k'] + params['b']


def additive_score(params: dict, query: jax.Array, keys: jax.Array, *,
                   projected: bool = False, bias: jax.Array | None = None) -> jax.Array:
  """(B, S) additive scores; ``projected`` means ``keys`` is :func:`additive_keys`' output;
  ``bias`` (B, S, A) is added inside the tanh (the location term)."""
  pk = keys if projected else additive_keys(params, keys)
  if bias is not None:
    pk = pk + bias
  return jnp.tanh(pk + (query @ params['w_q'])[:, None, :]) @ params['v']


def location_init(key, query_dim: int, key_dim: int, attention_dim: int, *,
                  filters: int = 8, width: int = 15, dtype=jnp.float32) -> dict:
  """Additive params plus ``conv`` (width, 2, filters) over [previous, cumulative]
  weights and ``w_loc`` (filters, A)."""
  ka, kc, kl = jax.random.split(key, 3)
  params = additive_init(ka, query_dim, key_dim, attention_dim, dtype)
  params['conv'] = jax.nn.initializers.glorot_uniform()(kc, (width, 2, filters), dtype)
  params['w_loc'] = jax.nn.initializers.glorot_uniform()(kl, (filters, attention_dim), dtype)
  return params


def location_features(params: dict, previous: jax.Array, cumulative: jax.Array) -> jax.Array:
  """(B, S, A) projected convolution of the previous and cumulative weights (B, S)."""
  x = jnp.stack([previous, cumulative], axis=-1).astype(params['conv'].dtype)
  f = jax.lax.conv_general_dilated(x, params['conv'], (1,), 'SAME',
                                   dimension_numbers=('NWC', 'WIO', 'NWC'))
  return f @ params['w_loc']


def location_score(params: dict, query: jax.Array, keys: jax.Array, previous: jax.Array,
                   cumulative: jax.Array, *, projected: bool = False) -> jax.Array:
  """(B, S) location-aware additive scores."""
  return additive_score(params, query, keys, projected=projected,
                        bias=location_features(params, previous, cumulative))


def dot_score(query: jax.Array, keys: jax.Array) -> jax.Array:
  """(B, S) dot-product scores ``q . k``."""
  if query.shape[-1] != keys.shape[-1]:
    raise ValueError(f'dot attention needs equal query and key widths, got '
                     f'{query.shape[-1]} and {keys.shape[-1]}; use "general" or "additive"')
  return jnp.einsum('bh,bsh->bs', query, keys)


def general_init(key, query_dim: int, key_dim: int, dtype=jnp.float32) -> dict:
  """Params of Luong's general attention: ``w`` (Hd, He)."""
  return {'w': jax.nn.initializers.glorot_uniform()(key, (query_dim, key_dim), dtype)}


def general_score(params: dict, query: jax.Array, keys: jax.Array) -> jax.Array:
  """(B, S) bilinear scores ``q W k``."""
  return jnp.einsum('be,bse->bs', query @ params['w'], keys)


def masked_softmax(scores: jax.Array, mask: jax.Array) -> jax.Array:
  """Softmax over the last axis restricted to ``mask``.

  Masked entries are exactly zero and each row with a valid entry sums to one;
  a row with no valid entry is all zeros (not NaN), so padded examples in a
  batch do no harm.
  """
  mask = jnp.asarray(mask, bool)
  scores = scores.astype(jnp.float32)
  safe = jnp.where(mask, scores, jnp.finfo(jnp.float32).min)
  shifted = safe - jax.lax.stop_gradient(jnp.max(safe, axis=-1, keepdims=True))
  e = jnp.where(mask, jnp.exp(shifted), 0.0)
  total = jnp.sum(e, axis=-1, keepdims=True)
  return e / jnp.where(total > 0, total, 1.0)


def last_valid_weights(mask: jax.Array) -> jax.Array:
  """One-hot (B, S) weights on each row's last valid frame (zeros for an empty row)."""
  mask = jnp.asarray(mask, bool)
  lengths = jnp.sum(mask, axis=-1)
  return jax.nn.one_hot(lengths - 1, mask.shape[-1]) * (lengths > 0)[:, None]


def scores(kind: str, params: dict | None, query: jax.Array, keys: jax.Array, *,
           projected_keys: bool = False, previous: tuple | None = None) -> jax.Array:
  """(B, S) unnormalised scores of ``kind`` ('additive', 'dot', 'general' or 'location').

  ``previous`` is ``(weights, cumulative weights)`` of the last step, each (B, S);
  'location' needs it.
  """
  if kind == 'additive':
    return additive_score(params, query, keys, projected=projected_keys)
  if kind == 'location':
    if previous is None:
      raise ValueError("'location' attention needs the previous (weights, cumulative weights)")
    return location_score(params, query, keys, *previous, projected=projected_keys)
  if kind == 'dot':
    return dot_score(query, keys)
  if kind == 'general':
    return general_score(params, query, keys)
  raise ValueError(f'unknown attention kind {kind!r}; choose one of {KINDS}')


def attend(kind: str, params: dict | None, query: jax.Array, keys: jax.Array,
           values: jax.Array, mask: jax.Array, *,
           projected_keys: bool = False, previous: tuple | None = None
           ) -> tuple[jax.Array, jax.Array]:
  """The context vector of one decoder step.

  Args:
    kind: 'additive', 'dot', 'general', 'location' or 'none'.
    params: the score's params (None for 'dot' and 'none').
    query: (B, Hd) current decoder state.
    keys: (B, S, He) encoder states (for 'additive' and 'location' with
      ``projected_keys``, the (B, S, A) output of :func:`additive_keys`).
    values: (B, S, Hv) states averaged into the context (usually the keys).
    mask: (B, S) valid encoder frames.
    previous: for 'location', the last step's (weights, cumulative weights).

  Returns:
    ``(context (B, Hv), weights (B, S))``; the weights are zero on masked frames
    and sum to one. For 'none' the weights are one-hot on the last valid frame.
  """
  if kind not in KINDS:
    raise ValueError(f'unknown attention kind {kind!r}; choose one of {KINDS}')
  if kind == 'none':
    weights = last_valid_weights(mask)
  else:
    weights = masked_softmax(scores(kind, params, query, keys, projected_keys=projected_keys,
                                    previous=previous), mask)
  context = jnp.einsum('bs,bsh->bh', weights.astype(values.dtype), values)
  return context, weights
