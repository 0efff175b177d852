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
    """A mesh over `devices` (default: every device of every process), one row per process, axes `AXIS`; over
    several TPU slices, the rows of one slice are adjacent (the hosts axis crosses slices over the data-center
    network, the data axis stays within a host)."""
    devices = sorted(jax.devices() if devices is None else devices, key=lambda d: (d.process_index, d.id))
    processes = len({d.process_index for d in devices})
    shape = (processes, len(devices) // processes)
    slices = len({getattr(d, "slice_index", 0) for d in devices})
    if slices > 1:  # TPU multi-slice: jax.make_mesh refuses it; the hosts axis crosses the slices over DCN
        from jax.experimental import mesh_utils

        grid = mesh_utils.create_hybrid_device_mesh((processes // slices, shape[1]), (slices, 1), devices=devices)
        mesh = jax.sharding.Mesh(grid, AXIS, axis_types=(jax.sharding.AxisType.Explicit,) * len(AXIS))
    else:
        mesh = jax.make_mesh(shape, AXIS, devices=devices)  # on TPUs, in an order that suits the interconnect
    if all(len({d.process_index for d in row}) == 1 for row in mesh.devices):
        return mesh
    return jax.sharding.Mesh(np.array(devices).reshape(shape), AXIS, axis_types=mesh.axis_types)


def global_batch(mesh, local: dict, keys=("frames", "label")) -> dict:
    """Host-local numpy batch -> global arrays sharded over 'data' (each process holds its rows)."""
    sharding = NamedSharding(mesh, P(AXIS))
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(local[k])) for k in keys}
