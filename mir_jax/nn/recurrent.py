"""Recurrent layers: a cell run over (batch, time, features) with ``jax.lax.scan``.

Shapes are batch-major at the API, ``(B, T, F)``; time-major only inside the scan.

* The input projection ``x @ w_ih + b`` for all time steps is one matrix product
  computed before the scan, split into one (T, B, H) array per gate.
* Variable lengths: past its length an example's carry is frozen and its output
  is zero, so the final carry is the one at each example's own last valid step.
* The reverse direction reverses each example within its own length
  (:func:`reverse_sequences`), so it starts at the example's last valid frame,
  not at the padded end.
* A bidirectional layer runs the unidirectional layer over parameters stacked on
  a leading direction axis of size 2 (forward, backward): ``jax.vmap`` for the
  generic scan, one call per direction for the fused LSTM and GRU.
* Dtype policy: parameters are stored as given (float32); with ``compute_dtype``
  (e.g. ``jnp.bfloat16``) params and inputs are cast for the computation and
  the outputs come back in ``compute_dtype``.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from mir_jax.nn import fused
from mir_jax.nn.cells import Cell, Params, get_cell

IMPLS = ('auto', 'native', 'in_loop', 'hoisted', 'scan')


def _project_in_loop(shape, hidden: int) -> bool:
  """Whether the fused layers should project inputs inside the loop.

  The per-step recurrent product is latency-bound, so an input product inside
  the loop costs little, while the hoisted projection costs a large product
  plus per-gate copies. On the 2-core CPU, in-loop was faster for forward +
  backward on every benchmark shape, LSTM and GRU, uni- and bidirectional
  (``experiments/benchmarks/lstm.py --impls mir_jax_in_loop,mir_jax_hoisted``);
  hoisting only won forward-only at batch 8. Kept as a function so a backend
  or shape rule can be added where measurements say so.
  """
  del shape, hidden
  return True



def _fast(cell: Cell, impl: str) -> bool:
  """Whether ``impl`` takes a fused layer of :mod:`mir_jax.nn.fused`."""
  if impl not in IMPLS:
    raise ValueError(f'impl must be one of {IMPLS}, got {impl!r}')
  return impl != 'scan' and cell.name in ('lstm', 'gru')


def _native(cell: Cell, impl: str, arrays) -> bool:
  """Whether the layer runs on the native CPU kernels (:mod:`mir_jax.kernels`).

  'auto' takes them for a float32 LSTM or GRU on the CPU backend where they
  built; 'native' insists and says why when it cannot.
  """
  if impl not in ('auto', 'native'):
    return False
  reason = None
  if cell.name not in ('lstm', 'gru'):
    reason = f'the native kernels run LSTMs and GRUs only, not {cell.name!r}'
  elif other := [a.dtype for a in jax.tree_util.tree_leaves(arrays) if a.dtype != jnp.float32]:
    reason = f'the native kernels run float32 only, not {jnp.dtype(other[0]).name}'
  elif jax.default_backend() != 'cpu':
    reason = f'the native kernels run on the CPU only, not {jax.default_backend()}'
  else:
    from mir_jax import kernels  # pylint: disable=import-outside-toplevel
    if not kernels.available():
      reason = 'the native kernels did not build (see the warning above)'
  if reason and impl == 'native':
    raise ValueError(f"impl='native': {reason}")
  return reason is None


def _batch_mesh(batch: int):
  """The surrounding program's mesh, where a fused layer can split its batch over it.

  A data-parallel program (``jax.set_mesh`` around a jit whose batch is sharded
  over the mesh, as :mod:`mir_jax.train` runs it) leaves the partitioning of a
  loop to XLA, which gathers the carry and the per-step arrays on every
  device; several CPU host devices then run the loop no faster than one.
  """
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty or mesh.size == 1 or mesh.manual_axes or batch % mesh.size:
    return None
  return mesh


def _split_batch(layer, params, xs, carry, valid):
  """``layer(params, xs (T, B, I), carry (B, ...), valid)`` with the batch split.

  Under a mesh of several devices (:func:`_batch_mesh`), each device runs the
  loop over its own rows at the same time (``shard_map``; params replicated,
  so their gradients are summed over devices). Otherwise a plain call.
  """
  mesh = _batch_mesh(xs.shape[1])
  if mesh is None:
    return layer(params, xs, carry, valid)
  rows = P(mesh.axis_names)  # the batch over every mesh axis
  steps = P(None, mesh.axis_names)
  if valid is None:
    fn = lambda p, x, c: layer(p, x, c, None)
    args, specs = (params, xs, carry), (P(), steps, rows)
  else:
    fn, args, specs = layer, (params, xs, carry, valid), (P(), steps, rows, steps)
  return jax.shard_map(fn, mesh=mesh, in_specs=specs, out_specs=(steps, rows),
                       check_vma=False)(*args)


def lengths_to_mask(lengths: jax.Array, max_len: int) -> jax.Array:
  """(B,) lengths -> (B, T) boolean mask of valid frames."""
  return jnp.arange(max_len)[None, :] < jnp.asarray(lengths)[:, None]


def reverse_sequences(x: jax.Array, lengths: jax.Array | None) -> jax.Array:
  """Reverses each example of ``x`` (B, T, ...) within its own valid length.

  Frames past an example's length stay where they are. The map is its own
  inverse, so the same call puts reversed outputs back in time order.
  """
  if lengths is None:
    return jnp.flip(x, axis=1)
  t = jnp.arange(x.shape[1])[None, :]
  lengths = jnp.asarray(lengths)[:, None]
  idx = jnp.where(t < lengths, lengths - 1 - t, t)
  idx = idx.reshape(idx.shape + (1,) * (x.ndim - 2))
  return jnp.take_along_axis(x, idx, axis=1)


def _cast(tree, dtype):
  if dtype is None:
    return tree
  return jax.tree_util.tree_map(
      lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


def rnn(cell: str | Cell, params: Params, x: jax.Array, lengths: jax.Array | None = None,
        *, reverse: bool = False, initial_carry: Any = None, unroll: int = 1,
        compute_dtype: Any = None, impl: str = 'auto') -> tuple[jax.Array, Any]:
  """Runs ``cell`` over ``x`` (B, T, F).

  Args:
    cell: a cell name ('lstm', 'gru', 'rnn_tanh', 'rnn_relu') or a :class:`Cell`.
    params: the cell's parameters (see :mod:`mir_jax.nn.cells`).
    x: inputs, (B, T, F).
    lengths: optional (B,) int valid lengths; None means all T frames are valid.
    reverse: run from each example's last valid frame back to its first.
    initial_carry: defaults to zeros.
    unroll: ``lax.scan`` unroll factor (1 is fastest on CPU for fwd+bwd).
    compute_dtype: optional dtype for the computation (params are cast to it).
    impl: 'auto' takes the fastest path a cell has: a float32 LSTM or GRU on
      the CPU runs the native kernels (:mod:`mir_jax.kernels`, where they
      built); other LSTMs and GRUs the fused layers with a hand-written
      backward pass (:mod:`mir_jax.nn.fused`), with the input projection
      placed by shape. 'native' forces the kernels (an error where they cannot
      run); 'in_loop' / 'hoisted' force the fused layer and that choice; 'scan'
      always differentiates the generic scan (the reference the fast paths match).

  Returns:
    ``(outputs, final_carry)``: outputs (B, T, H), zero past each length and in
    the input's time order also when ``reverse``; the carry after each
    example's last valid step.
  """
  cell = get_cell(cell)
  params = _cast(params, compute_dtype)
  if compute_dtype is not None:
    x = x.astype(compute_dtype)
  batch, steps, _ = x.shape
  hidden = cell.hidden_size(params)
  if reverse:
    x = reverse_sequences(x, lengths)
  if initial_carry is None:
    initial_carry = cell.initial_carry(batch, hidden, x.dtype)
  else:
    initial_carry = _cast(initial_carry, compute_dtype)
  xs = jnp.swapaxes(x, 0, 1)  # time-major inside
  valid = None
  if lengths is not None:
    valid = (jnp.arange(steps)[:, None] < jnp.asarray(lengths)[None, :])[..., None]

  if _native(cell, impl, (params, x, initial_carry)):
    from mir_jax.kernels import gru, lstm  # pylint: disable=import-outside-toplevel
    layer = lstm.lstm_layer if cell.name == 'lstm' else gru.gru_layer
    hs, final = _split_batch(layer, params, xs, initial_carry, valid)
  elif _fast(cell, impl):
    in_loop = impl == 'in_loop' or (impl == 'auto' and _project_in_loop(x.shape, hidden))
    layer = fused.lstm_layer if cell.name == 'lstm' else fused.gru_layer
    hs, final = _split_batch(
        lambda p, xs, carry, valid: layer(p, xs, carry, valid, unroll, in_loop),
        params, xs, initial_carry, valid)
  elif lengths is None:
    gates = cell.project(params, xs)  # G x (T, B, H)
    def body(carry, gates_t):
      return cell.step_projected(params, carry, gates_t)
    final, hs = jax.lax.scan(body, initial_carry, gates, unroll=unroll)
  else:
    def body(carry, inputs):
      gates_t, valid_t = inputs
      new_carry, h = cell.step_projected(params, carry, gates_t)
      new_carry = jax.tree_util.tree_map(
          lambda new, old: jnp.where(valid_t, new, old), new_carry, carry)
      return new_carry, jnp.where(valid_t, h, jnp.zeros_like(h))
    gates = cell.project(params, xs)
    final, hs = jax.lax.scan(body, initial_carry, (gates, valid), unroll=unroll)

  outputs = jnp.swapaxes(hs, 0, 1)
  if reverse:
    outputs = reverse_sequences(outputs, lengths)
  return outputs, final


def bidirectional_init(key, cell: str | Cell, input_dim: int, hidden_dim: int,
                       dtype=jnp.float32) -> Params:
  """Forward and backward params stacked on a leading axis of size 2."""
  cell = get_cell(cell)
  # Two calls, not a vmap: a vmapped (batched) QR from the orthogonal init
  # deadlocks XLA:CPU (jax 0.10.2) when two such layers are initialised in one jit.
  directions = [cell.init(k, input_dim, hidden_dim, dtype) for k in jax.random.split(key, 2)]
  return jax.tree_util.tree_map(lambda *a: jnp.stack(a), *directions)


def merge_directions(fwd: jax.Array, bwd: jax.Array, merge: str) -> jax.Array:
  if merge == 'concat':
    return jnp.concatenate([fwd, bwd], axis=-1)
  if merge == 'sum':
    return fwd + bwd
  raise ValueError(f"merge must be 'concat' or 'sum', got {merge!r}")


def bidirectional(cell: str | Cell, params: Params, x: jax.Array,
                  lengths: jax.Array | None = None, *, merge: str = 'concat',
                  initial_carry: Any = None, unroll: int = 1,
                  compute_dtype: Any = None, impl: str = 'auto') -> tuple[jax.Array, Any]:
  """A bidirectional layer: :func:`rnn` over stacked directions.

  The generic scan is ``vmap``-ped over the direction axis; the fused LSTM and
  GRU layers run as two separate calls (see below).

  Args:
    params: a cell's params with a leading direction axis of size 2
      (index 0 forward, 1 backward), e.g. from :func:`bidirectional_init`.
    initial_carry: optional, stacked on a leading axis of size 2 likewise.
    merge: 'concat' -> (B, T, 2H), 'sum' -> (B, T, H).

  Returns:
    ``(outputs, final_carry)`` with the final carries stacked (2, ...): the
    forward one at each example's last valid frame, the backward one at its
    first frame.
  """
  cell = get_cell(cell)
  # The backward direction sees each example reversed within its own length.
  inputs = (x, reverse_sequences(x, lengths))

  def one_direction(p, xd, carry):
    return rnn(cell, p, xd, lengths, initial_carry=carry, unroll=unroll,
               compute_dtype=compute_dtype, impl=impl)

  if _fast(cell, impl):
    # Two calls instead of a vmap for the fused layers: a vmap makes one loop of
    # batched (2, B, H) @ (2, H, G*H) products, 11% slower on the 2-core CPU
    # (experiments/benchmarks/lstm.py --impls mir_jax,mir_jax_vmap).
    take = lambda tree, d: jax.tree_util.tree_map(lambda a: a[d], tree)
    results = [one_direction(take(params, d), inputs[d],
                             None if initial_carry is None else take(initial_carry, d))
               for d in (0, 1)]
    outs = [r[0] for r in results]
    finals = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *[r[1] for r in results])
  else:
    carry_axis = None if initial_carry is None else 0
    stacked, finals = jax.vmap(one_direction, in_axes=(0, 0, carry_axis))(
        params, jnp.stack(inputs), initial_carry)
    outs = [stacked[0], stacked[1]]
  fwd, bwd = outs[0], reverse_sequences(outs[1], lengths)
  return merge_directions(fwd, bwd, merge), finals


_bidirectional_layer = bidirectional  # `stack` has an argument of the same name


def stack_init(key, cell: str | Cell, input_dim: int, hidden_dim: int, num_layers: int,
               *, bidirectional: bool = True, merge: str = 'concat',
               dtype=jnp.float32) -> list[Params]:
  """Params for ``num_layers`` stacked layers (a list, one entry per layer)."""
  cell = get_cell(cell)
  width = hidden_dim * (2 if bidirectional and merge == 'concat' else 1)
  layers = []
  for layer, k in enumerate(jax.random.split(key, num_layers)):
    in_dim = input_dim if layer == 0 else width
    if bidirectional:
      layers.append(bidirectional_init(k, cell, in_dim, hidden_dim, dtype))
    else:
      layers.append(cell.init(k, in_dim, hidden_dim, dtype))
  return layers


def stack(cell: str | Cell, layers: Sequence[Params], x: jax.Array,
          lengths: jax.Array | None = None, *, bidirectional: bool = True,
          merge: str = 'concat', dropout_rate: float = 0.0, dropout_key=None,
          residual: bool = False, unroll: int = 1,
          compute_dtype: Any = None, impl: str = 'auto') -> tuple[jax.Array, list]:
  """Stacked recurrent layers with dropout between them.

  Dropout (inverted, rate ``dropout_rate``) is applied to the inputs of layers
  2..L only when ``dropout_key`` is given; without a key the stack is
  deterministic. With ``residual`` a layer's input is added to its output
  wherever the widths agree (so from the second layer on).

  Returns:
    ``(outputs, finals)``: the last layer's outputs and each layer's final carry.
  """
  cell = get_cell(cell)
  finals = []
  h = x
  for index, params in enumerate(layers):
    inp = h
    if index > 0 and dropout_key is not None and dropout_rate > 0.0:
      keep = jax.random.bernoulli(jax.random.fold_in(dropout_key, index),
                                  1.0 - dropout_rate, inp.shape)
      inp = jnp.where(keep, inp / (1.0 - dropout_rate), jnp.zeros_like(inp))
    if bidirectional:
      h, final = _bidirectional_layer(
          cell, params, inp, lengths, merge=merge, unroll=unroll,
          compute_dtype=compute_dtype, impl=impl)
    else:
      h, final = rnn(cell, params, inp, lengths, unroll=unroll,
                     compute_dtype=compute_dtype, impl=impl)
    if residual and h.shape[-1] == inp.shape[-1]:
      skip = inp.astype(h.dtype)
      if lengths is not None:  # keep padded frames at zero
        skip = jnp.where(lengths_to_mask(lengths, skip.shape[1])[..., None], skip, 0)
      h = h + skip
    finals.append(final)
  return h, finals
