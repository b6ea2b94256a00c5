"""Data parallelism over tasks: a meta-batch split across the devices of a Mesh.

The task axis of every sampled meta-batch is constrained to the mesh's
'tasks' axis; parameters, optimiser state and dataset arrays are replicated.
XLA's SPMD partitioner then runs each device's share of the vmapped task
losses and all-reduces the meta-gradient, so the same program runs on 1 or N
devices (and hosts, after `jax.distributed.initialize`).
"""
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
import numpy as np

TASK_AXIS = 'tasks'


def task_mesh(num_devices: int | None = None) -> Mesh:
  """A 1-D mesh over the first `num_devices` devices (all of them if None)."""
  devices = jax.devices()
  if num_devices is not None:
    if not 1 <= num_devices <= len(devices):
      raise ValueError(f'num_devices must be in 1..{len(devices)}, got {num_devices}.')
    devices = devices[:num_devices]
  return Mesh(np.array(devices), (TASK_AXIS,))


def check_divisible(meta_batch_size: int, mesh: Mesh) -> None:
  if meta_batch_size % mesh.size:
    raise ValueError(f'meta_batch_size {meta_batch_size} is not divisible by the '
                     f'{mesh.size} devices of the task mesh.')


def replicate(tree, mesh: Mesh):
  return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def shard_tasks(tasks, mesh: Mesh):
  """Constrains the leading (task) axis of every leaf to the mesh's task axis."""
  spec = NamedSharding(mesh, PartitionSpec(TASK_AXIS))
  return jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, spec), tasks)
