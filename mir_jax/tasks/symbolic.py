"""A symbolic sanity task for the seq2seq decoder: reverse (or sort) token sequences.

Reversing needs attention once sequences grow: the encoder summary alone cannot
hold 16+ tokens, while attention can look each one up. The task is audio-free,
seeded and fast, so it checks that the decoder learns and that attention helps.

Token ids: 0 ``<pad>``, 1 ``<s>``, 2 ``</s>``, then ``num_symbols`` symbols.
Sources are one-hot feature frames (B, S, vocab) with lengths; targets are
``targets_in = <s> y`` and ``targets_out = y </s>`` padded to ``max_len + 1``.
"""

from __future__ import annotations

import time
from typing import Iterator

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mir_jax.models.seq2seq import Seq2Seq, decode, sequence_cross_entropy

PAD, START, END = 0, 1, 2
NUM_SPECIAL = 3
TASKS = ('reverse', 'sort')


def vocab_size(num_symbols: int) -> int:
  return num_symbols + NUM_SPECIAL


def make_batch(rng: np.random.Generator, batch_size: int, min_len: int, max_len: int,
               num_symbols: int = 10, task: str = 'reverse') -> dict[str, np.ndarray]:
  """One batch of random sequences with lengths uniform in [min_len, max_len]."""
  if task not in TASKS:
    raise ValueError(f'symbolic task {task!r} is not one of {TASKS}')
  if not 1 <= min_len <= max_len:
    raise ValueError(f'need 1 <= min_len <= max_len, got {min_len}, {max_len}')
  v = vocab_size(num_symbols)
  lengths = rng.integers(min_len, max_len + 1, size=batch_size).astype(np.int32)
  source = np.zeros((batch_size, max_len), np.int32)
  targets_in = np.zeros((batch_size, max_len + 1), np.int32)
  targets_out = np.zeros((batch_size, max_len + 1), np.int32)
  for b, n in enumerate(lengths):
    seq = rng.integers(NUM_SPECIAL, v, size=n)
    out = seq[::-1] if task == 'reverse' else np.sort(seq)
    source[b, :n] = seq
    targets_in[b, 0] = START
    targets_in[b, 1:n + 1] = out
    targets_out[b, :n] = out
    targets_out[b, n] = END
  mask = np.arange(max_len + 1)[None, :] <= lengths[:, None]
  features = np.eye(v, dtype=np.float32)[source] * (source > 0)[..., None]
  return {'features': features, 'lengths': lengths, 'source': source,
          'targets_in': targets_in, 'targets_out': targets_out, 'target_mask': mask}


def batches(seed: int, batch_size: int, min_len: int, max_len: int, num_symbols: int = 10,
            task: str = 'reverse') -> Iterator[dict[str, np.ndarray]]:
  """An endless seeded stream of :func:`make_batch` batches."""
  rng = np.random.default_rng(seed)
  while True:
    yield make_batch(rng, batch_size, min_len, max_len, num_symbols, task)


def tiny_model(num_symbols: int = 10, attention: str = 'additive', **overrides) -> Seq2Seq:
  """A small seq2seq model sized for the symbolic task (no downsampling)."""
  kwargs = dict(vocab_size=vocab_size(num_symbols), embed_dim=16, encoder_hidden=32,
                encoder_layers=1, downsample='none', decoder_hidden=64, attention=attention,
                attention_dim=32, input_feeding=True, output_hidden=64)
  kwargs.update(overrides)
  return Seq2Seq(**kwargs)


def train(model: Seq2Seq, *, steps: int, batch_size: int = 64, min_len: int = 2,
          max_len: int = 6, num_symbols: int = 10, task: str = 'reverse',
          learning_rate: float = 3e-3, label_smoothing: float = 0.0, seed: int = 0,
          time_limit_s: float | None = None) -> tuple[dict, list[dict]]:
  """Trains ``model`` by teacher forcing with Adam; returns (variables, history).

  Stops after ``steps`` updates or ``time_limit_s`` seconds, whichever is first.
  ``history`` holds one dict of metrics every 50 steps.
  """
  data = batches(seed, batch_size, min_len, max_len, num_symbols, task)
  first = next(data)
  variables = model.init(jax.random.PRNGKey(seed), first['features'], first['lengths'],
                         first['targets_in'])
  tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(learning_rate))
  opt_state = tx.init(variables)

  @jax.jit
  def step(variables, opt_state, batch):
    def loss_fn(v):
      logits = model.apply(v, batch['features'], batch['lengths'], batch['targets_in'])
      return sequence_cross_entropy(logits, batch['targets_out'], batch['target_mask'],
                                    label_smoothing)
    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(variables)
    updates, opt_state = tx.update(grads, opt_state, variables)
    return optax.apply_updates(variables, updates), opt_state, dict(aux, loss=loss)

  history = []
  start = time.perf_counter()
  batch = first
  for i in range(steps):
    variables, opt_state, metrics = step(variables, opt_state, batch)
    if i % 50 == 0 or i == steps - 1:
      history.append({'step': i, 'time_s': time.perf_counter() - start,
                      **{k: float(v) for k, v in metrics.items()}})
    if time_limit_s is not None and time.perf_counter() - start > time_limit_s:
      break
    batch = next(data)
  return variables, history


def sequence_accuracy(tokens: np.ndarray, targets_out: np.ndarray) -> float:
  """Fraction of decoded sequences equal to the target up to and including ``</s>``."""
  tokens, targets_out = np.asarray(tokens), np.asarray(targets_out)
  hits = 0
  for pred, ref in zip(tokens, targets_out):
    n = int(np.argmax(ref == END)) + 1
    hits += pred.shape[0] >= n and np.array_equal(pred[:n], ref[:n])
  return hits / len(tokens)


def evaluate(model: Seq2Seq, variables, batch: dict, *, method: str = 'greedy',
             beam_size: int = 4, length_penalty: float = 0.0) -> dict[str, float]:
  """Decodes ``batch`` and returns sequence accuracy and mean log-probability."""
  max_len = batch['targets_out'].shape[1]
  fn = jax.jit(lambda v, f, l: decode(model, v, f, l, max_len=max_len, start_id=START,
                                      end_id=END, pad_id=PAD, method=method,
                                      beam_size=beam_size, length_penalty=length_penalty))
  res = fn(variables, jnp.asarray(batch['features']), jnp.asarray(batch['lengths']))
  return {'sequence_accuracy': sequence_accuracy(res.tokens, batch['targets_out']),
          'mean_score': float(jnp.mean(res.scores))}
