"""The device mesh and how arrays are laid out on it (the only module that builds a mesh).

Data parallelism: one 1-D mesh named ``data`` over every device of every host;
batches are split along their leading axis, parameters and optimizer state are
replicated. The same code runs on one CPU, N fake CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=N``), GPUs and TPU pods.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = 'data'

_distributed_initialized = False


def maybe_initialize_distributed(enabled: bool) -> None:
  """Calls ``jax.distributed.initialize()`` once when multi-host is asked for.

  On TPU VMs and SLURM/Kubernetes clusters JAX reads the coordinator address
  and process ids from the environment, so no arguments are needed.
  """
  global _distributed_initialized
  if enabled and not _distributed_initialized:
    jax.distributed.initialize()
    _distributed_initialized = True


def make_mesh(devices=None) -> Mesh:
  """A 1-D ``data`` mesh over ``devices`` (default: all devices of all hosts).

  Axis types are ``Auto`` because jax>=0.7 defaults to explicit axes, under
  which a ``lax.scan`` with an unsharded zeros carry fails its type check.
  """
  if devices is None:
    return jax.make_mesh((jax.device_count(),), (DATA_AXIS,), axis_types=(AxisType.Auto,))
  devices = np.asarray(devices).reshape(-1)
  return Mesh(devices, (DATA_AXIS,), axis_types=(AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
  """Sharding that keeps a full copy on every device (params, optimizer state)."""
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Sharding that splits the leading (batch) axis over the ``data`` axis."""
  return NamedSharding(mesh, P(DATA_AXIS))


def host_shard() -> tuple[int, int]:
  """(index, count) of this host's share of the data: one shard per process."""
  return jax.process_index(), jax.process_count()


def device_arrays(batch: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """The entries of a batch that go to devices (numeric arrays; not track ids)."""
  out = {}
  for name, value in batch.items():
    if isinstance(value, (np.ndarray, jax.Array)) and value.dtype != object:
      out[name] = value
  return out


def global_batch(batch: Mapping[str, Any], mesh: Mesh) -> dict[str, jax.Array]:
  """Assembles each host's local batch into one array sharded over ``data``.

  Every host passes its own ``local_batch_size`` rows; the global batch is the
  concatenation over processes. Non-array entries (track ids) are dropped.
  """
  sharding = batch_sharding(mesh)
  out = {}
  for name, value in device_arrays(batch).items():
    value = np.asarray(value)
    global_shape = (value.shape[0] * jax.process_count(),) + value.shape[1:]
    out[name] = jax.make_array_from_process_local_data(sharding, value, global_shape)
  return out
