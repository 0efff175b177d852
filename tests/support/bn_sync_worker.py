"""One process of tests/training/test_bn_sync.py: BatchNorm statistics of the tiny classifier under each
`model.bn_sync`.

    python tests/support/bn_sync_worker.py OUT.npz [COORDINATOR NUM_PROCESSES PROCESS_ID]

Every process makes the same global batch and keeps its rows, runs one training-mode forward under shard_map over
`make_mesh()` for each scope, and saves its devices' BN means beside references computed without any
mapped axis on the rows a device, a process, or the whole batch holds.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import jax
import numpy as np
from jax.sharding import PartitionSpec as P

from configs.common import base_config
from vmp_jax.models import factory
from vmp_jax.training import distributed
from vmp_jax.training.mesh import AXIS, global_batch, make_mesh

BATCH, SHAPE = 8, (2, 8, 8, 3)


def first_bn_mean(batch_stats):
    return np.asarray(batch_stats["backbone"]["BatchNorm_0"]["mean"])


def main(out, coordinator=None, num_processes=None, process_id=None):
    if coordinator:
        distributed.initialize(coordinator, int(num_processes), int(process_id), "gloo")
    config = base_config()
    config.model.backbone = "tiny"
    frames = np.random.default_rng(0).normal(size=(BATCH, *SHAPE)).astype(np.float32)
    rows = BATCH // jax.process_count()
    local = frames[jax.process_index() * rows : (jax.process_index() + 1) * rows]
    mesh = make_mesh()
    batch = global_batch(mesh, {"frames": local}, keys=("frames",))["frames"]
    results = {}
    for scope in factory.BN_SYNC:
        config.model.bn_sync = scope
        model = factory.build_model(config.model, 4, bn_axis_name=AXIS)
        variables = factory.init_variables(model, jax.random.key(0), (1, *SHAPE))

        def stats(x, model=model, variables=variables):
            _, new = model.apply(variables, x, train=True, mutable=["batch_stats"])
            return jax.tree.map(lambda a: a[None], new["batch_stats"])

        out_stats = jax.jit(jax.shard_map(stats, mesh=mesh, in_specs=P(AXIS), out_specs=P(AXIS)))(batch)
        shards = out_stats["backbone"]["BatchNorm_0"]["mean"].addressable_shards  # this process's devices, in order
        results[scope] = np.stack([np.asarray(s.data)[0] for s in sorted(shards, key=lambda s: s.index[0].start)])
    reference = factory.build_model(config.model, 4, bn_axis_name=None)  # bn_sync 'none', no mapped axis
    variables = factory.init_variables(reference, jax.random.key(0), (1, *SHAPE))
    apply = jax.jit(lambda x: reference.apply(variables, x, train=True, mutable=["batch_stats"])[1]["batch_stats"])
    ref = lambda x: first_bn_mean(apply(x))  # noqa: E731
    per_device = BATCH // jax.device_count()
    results["ref_all"] = ref(frames)
    results["ref_process"] = ref(local)
    results["ref_devices"] = np.stack([ref(local[i : i + per_device]) for i in range(0, rows, per_device)])
    np.savez(out, **results)


if __name__ == "__main__":
    main(*sys.argv[1:])
