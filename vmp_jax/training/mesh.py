"""The data-parallel layout of a run: one mesh of processes x local devices, the batch split over both axes.

Parameters are replicated; each process feeds its own rows of the global batch (`global_batch`).
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

AXIS = ("hosts", "data")  # the mesh axes the batch is split over: across processes, then within one


def make_mesh(devices=None) -> jax.sharding.Mesh:
    """A mesh over `devices` (default: every device of every process), one row per process, axes `AXIS`."""
    devices = sorted(jax.devices() if devices is None else devices, key=lambda d: (d.process_index, d.id))
    processes = len({d.process_index for d in devices})
    shape = (processes, len(devices) // processes)
    mesh = jax.make_mesh(shape, AXIS, devices=devices)  # on TPUs, in an order that suits the interconnect
    if all(len({d.process_index for d in row}) == 1 for row in mesh.devices):
        return mesh
    return jax.sharding.Mesh(np.array(devices).reshape(shape), AXIS, axis_types=mesh.axis_types)


def global_batch(mesh, local: dict, keys=("frames", "label")) -> dict:
    """Host-local numpy batch -> global arrays sharded over 'data' (each process holds its rows)."""
    sharding = NamedSharding(mesh, P(AXIS))
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(local[k])) for k in keys}
