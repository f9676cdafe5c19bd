"""Greedy and beam-search decoding under ``jit``, with fixed shapes.

Both decoders drive a *step function*

    ``step_fn(state, token_ids (N,)) -> (log_probs (N, V), state)``
    or ``-> (log_probs (N, V), state, attention (N, S))``

whose ``state`` is any pytree with a leading batch axis N. They run a
``lax.while_loop`` over at most ``max_len`` steps with a per-sequence finished
flag, so shapes never depend on the data: one compilation serves every batch of
the same shape, and the loop stops early once every sequence has emitted
``end_id``. Positions after a sequence's end hold ``pad_id``.

Beam search keeps ``beam_size`` hypotheses per example (the state is tiled to
``B * beam_size`` rows). A finished hypothesis keeps its slot and competes with
the live ones at its final score, so with ``beam_size=1`` beam search is exactly
greedy search. The search stops early once no live hypothesis can overtake
the best finished one. Hypotheses are ranked by ``log p / lp(length)`` with the GNMT
length penalty ``lp(n) = ((5 + n) / 6) ** length_penalty`` (0 disables it).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

StepFn = Callable[[Any, jax.Array], tuple]
NEG_INF = -1.0e30  # finite, so that -inf - -inf never makes a NaN


class DecodeResult(NamedTuple):
  """Decoded sequences.

  tokens: (B, max_len) int32, ``pad_id`` after the end token.
  lengths: (B,) int32 tokens up to and including the end token (``max_len``
    when a sequence never ended).
  scores: (B,) summed log-probabilities of the emitted tokens.
  attention: (B, max_len, S) the step's attention weights (zeros after the
    end), or None when the step function returns none.
  """
  tokens: jax.Array
  lengths: jax.Array
  scores: jax.Array
  attention: jax.Array | None


def _call(step_fn: StepFn, state, ids):
  out = step_fn(state, ids)
  if len(out) == 3:
    return out
  if len(out) == 2:
    return out[0], out[1], None
  raise ValueError('step_fn must return (log_probs, state) or (log_probs, state, attention)')


def _batch_size(state) -> int:
  leaves = jax.tree_util.tree_leaves(state)
  if not leaves:
    raise ValueError('init_state has no arrays; its leaves need a leading batch axis')
  return leaves[0].shape[0]


def _probe(step_fn: StepFn, state, start_id: int):
  """Shapes of (log_probs, attention) from an abstract step, without running it."""
  batch = _batch_size(state)
  ids = jax.ShapeDtypeStruct((batch,), jnp.int32)
  lp, _, att = jax.eval_shape(lambda s, i: _call(step_fn, s, i), state, ids)
  return lp, att


def length_penalty_factor(lengths: jax.Array, alpha: float) -> jax.Array:
  """GNMT length penalty ``((5 + n) / 6) ** alpha``."""
  return ((5.0 + lengths.astype(jnp.float32)) / 6.0) ** alpha


def greedy_decode(step_fn: StepFn, init_state, start_id: int, end_id: int, max_len: int,
                  *, pad_id: int = 0) -> DecodeResult:
  """Picks the most probable token at each step until ``end_id`` or ``max_len``.

  Jittable: close over ``step_fn`` inside the jitted function.
  """
  batch = _batch_size(init_state)
  lp_shape, att_shape = _probe(step_fn, init_state, start_id)
  has_att = att_shape is not None

  def cond(carry):
    t, finished = carry[0], carry[2]
    return (t < max_len) & ~jnp.all(finished)

  def body(carry):
    t, tokens, finished, lengths, scores, state, prev, att = carry
    log_probs, state, weights = _call(step_fn, state, prev)
    log_probs = log_probs.astype(jnp.float32)
    tok = jnp.argmax(log_probs, axis=-1).astype(jnp.int32)
    tok_lp = jnp.take_along_axis(log_probs, tok[:, None], axis=-1)[:, 0]
    live = ~finished
    tokens = tokens.at[:, t].set(jnp.where(live, tok, pad_id))
    scores = scores + jnp.where(live, tok_lp, 0.0)
    lengths = jnp.where(live, t + 1, lengths)
    if has_att:
      att = att.at[:, t].set(jnp.where(live[:, None], weights.astype(att.dtype), 0))
    finished = finished | (tok == end_id)
    return t + 1, tokens, finished, lengths, scores, state, jnp.where(live, tok, prev), att

  att0 = jnp.zeros((batch, max_len, att_shape.shape[-1]), jnp.float32) if has_att else jnp.zeros(())
  carry = (jnp.int32(0), jnp.full((batch, max_len), pad_id, jnp.int32),
           jnp.zeros((batch,), bool), jnp.full((batch,), max_len, jnp.int32),
           jnp.zeros((batch,), jnp.float32), init_state,
           jnp.full((batch,), start_id, jnp.int32), att0)
  _, tokens, _, lengths, scores, _, _, att = jax.lax.while_loop(cond, body, carry)
  return DecodeResult(tokens, lengths, scores, att if has_att else None)


def tile_beams(tree, beam_size: int):
  """Repeats every leaf's batch rows ``beam_size`` times: (B, ...) -> (B * K, ...)."""
  return jax.tree_util.tree_map(lambda a: jnp.repeat(a, beam_size, axis=0), tree)


def beam_search(step_fn: StepFn, init_state, start_id: int, end_id: int, max_len: int,
                beam_size: int = 4, length_penalty: float = 0.0, *, pad_id: int = 0,
                return_beams: bool = False):
  """Batched beam search with fixed shapes.

  Args:
    step_fn: see the module docstring; it is called on ``B * beam_size`` rows.
    init_state: the state for B examples (tiled over beams here).
    start_id, end_id, pad_id: token ids.
    max_len: most tokens per sequence (end token included).
    beam_size: hypotheses kept per example (1 gives greedy search).
    length_penalty: GNMT alpha; 0 ranks by summed log-probability.
    return_beams: also return ``(tokens (B, K, L), lengths (B, K), ranking scores (B, K))``.

  Returns:
    A :class:`DecodeResult` of the best hypothesis per example (and the beams).
  """
  if beam_size < 1:
    raise ValueError(f'beam_size must be >= 1, got {beam_size}')
  if length_penalty < 0:
    raise ValueError(f'length_penalty must be >= 0, got {length_penalty}')
  batch = _batch_size(init_state)
  k = beam_size
  state0 = tile_beams(init_state, k)
  lp_shape, att_shape = _probe(step_fn, state0, start_id)
  vocab = lp_shape.shape[-1]
  has_att = att_shape is not None
  # Only beam 0 is live at the start, so the first step does not pick K copies
  # of the same hypothesis.
  cum0 = jnp.tile(jnp.asarray([0.0] + [NEG_INF] * (k - 1), jnp.float32), (batch, 1))
  # A finished hypothesis may only extend by pad at zero cost: it keeps its score.
  finished_row = jnp.full((vocab,), NEG_INF, jnp.float32).at[pad_id].set(0.0)
  offsets = (jnp.arange(batch) * k)[:, None]

  def rank(cum, lengths):
    return cum / length_penalty_factor(lengths, length_penalty) if length_penalty else cum

  def cond(carry):
    # Stop once, for every example, the best finished hypothesis outranks the
    # best score any live one could still reach: live log-probs only fall, and
    # the length penalty can at most divide them by lp(max_len).
    t, _, cum, finished, lengths = carry[:5]
    best_finished = jnp.max(jnp.where(finished, rank(cum, lengths), -jnp.inf), axis=1)
    bound = cum / length_penalty_factor(jnp.int32(max_len), length_penalty)
    best_live = jnp.max(jnp.where(finished, -jnp.inf, bound), axis=1)
    return (t < max_len) & ~jnp.all(best_finished >= best_live)

  def body(carry):
    t, seqs, cum, finished, lengths, state, prev, att = carry
    log_probs, state, weights = _call(step_fn, state, prev.reshape(-1))
    log_probs = log_probs.astype(jnp.float32).reshape(batch, k, vocab)
    log_probs = jnp.where(finished[..., None], finished_row, log_probs)
    cand = cum[..., None] + log_probs                                  # (B, K, V)
    cand_len = jnp.where(finished, lengths, t + 1)[..., None]
    ranked = rank(cand, jnp.broadcast_to(cand_len, cand.shape))
    _, idx = jax.lax.top_k(ranked.reshape(batch, k * vocab), k)        # (B, K)
    beam, tok = idx // vocab, (idx % vocab).astype(jnp.int32)
    was_finished = jnp.take_along_axis(finished, beam, axis=1)
    cum = jnp.take_along_axis(cand.reshape(batch, k * vocab), idx, axis=1)
    seqs = jnp.take_along_axis(seqs, beam[..., None], axis=1)
    seqs = seqs.at[:, :, t].set(jnp.where(was_finished, pad_id, tok))
    lengths = jnp.where(was_finished, jnp.take_along_axis(lengths, beam, axis=1), t + 1)
    rows = (offsets + beam).reshape(-1)
    state = jax.tree_util.tree_map(lambda a: jnp.take(a, rows, axis=0), state)
    if has_att:
      att = jnp.take_along_axis(att, beam[..., None, None], axis=1)
      w = weights.reshape(batch, k, -1)[jnp.arange(batch)[:, None], beam]
      att = att.at[:, :, t].set(jnp.where(was_finished[..., None], 0, w.astype(att.dtype)))
    finished = was_finished | (tok == end_id)
    prev = jnp.where(was_finished, jnp.take_along_axis(prev, beam, axis=1), tok)
    return t + 1, seqs, cum, finished, lengths, state, prev, att

  att0 = (jnp.zeros((batch, k, max_len, att_shape.shape[-1]), jnp.float32)
          if has_att else jnp.zeros(()))
  carry = (jnp.int32(0), jnp.full((batch, k, max_len), pad_id, jnp.int32), cum0,
           jnp.zeros((batch, k), bool), jnp.full((batch, k), max_len, jnp.int32), state0,
           jnp.full((batch, k), start_id, jnp.int32), att0)
  _, seqs, cum, _, lengths, _, _, att = jax.lax.while_loop(cond, body, carry)
  final = rank(cum, lengths)
  best = jnp.argmax(final, axis=1)
  pick = lambda a: jnp.take_along_axis(a, best.reshape((batch,) + (1,) * (a.ndim - 1)), axis=1)[:, 0]
  result = DecodeResult(pick(seqs), pick(lengths), pick(cum), pick(att) if has_att else None)
  if return_beams:
    return result, (seqs, lengths, final)
  return result
