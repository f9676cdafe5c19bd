"""The device mesh and how arrays are laid out on it (the only module that builds a mesh).

Data parallelism: one 1-D mesh named ``data`` over every device of every host;
batches are split along their leading axis, parameters and optimizer state are
replicated. The same code runs on one CPU, N fake CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=N``), GPUs and TPU pods.
"""

from __future__ import annotations

import os
import re
from typing import Any, Mapping

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = 'data'

_distributed_initialized = False
_HOST_FLAG = '--xla_force_host_platform_device_count'


def cpu_cores() -> int:
  """The cores this process may run on (its affinity mask, not the machine's)."""
  return len(os.sched_getaffinity(0))


def use_host_devices(count: int, key: str = 'config.train.host_devices') -> int:
  """Splits the CPU into ``count`` XLA host devices (0: one per core).

  Data parallelism over them runs each device's rows of a batch on its own
  core, and the fused recurrent layers follow (one loop per core instead of
  one loop for the whole batch). Must run before JAX starts its backends;
  afterwards only the count they started with is accepted. Returns the count.
  """
  from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
  count = int(count) or cpu_cores()
  if count < 1:
    raise ValueError(f'{key}={count}: must be >= 1, or 0 for one device per core')
  flags = os.environ.get('XLA_FLAGS', '')
  set_before = re.search(_HOST_FLAG + r'=(\d+)', flags)
  if xla_bridge.backends_are_initialized() or set_before:
    have = len(jax.devices('cpu')) if xla_bridge.backends_are_initialized() else int(
        set_before.group(1))
    if count not in (1, have):
      raise ValueError(
          f'{key}={count}, but this process already has {have} CPU device(s) '
          f'(JAX started, or XLA_FLAGS sets {_HOST_FLAG}); set it before anything runs')
    return have
  if count > 1:
    os.environ['XLA_FLAGS'] = f'{flags} {_HOST_FLAG}={count}'.strip()
  return count


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
