"""Wall-clock timing shared by the benchmark scripts (which run as `python benchmarks/NAME.py`)."""

import statistics
import time


def median_seconds(fn, runs: int, warmup: int = 1) -> float:
    """Median wall time of `runs` calls of `fn` (which must block until its work is done), after `warmup` calls."""
    for _ in range(warmup):
        fn()  # compiles, fills caches
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def train_step_rows(name: str, shape: str, batch: int, ours_fn, theirs_fn, runs: int) -> list[tuple]:
    """Table rows (workload, shape, median s, clips/s, PyTorch time / ours) of our train step, timed first, and,
    when `theirs_fn` is given, of the PyTorch one (its row is the 1.00x reference). `name`: 'train step X'."""
    ours = median_seconds(ours_fn, runs)
    theirs = None if theirs_fn is None else median_seconds(theirs_fn, runs)
    ratio = "" if theirs is None else f"{theirs / ours:.2f}x"
    rows = [(f"{name} (JAX)", shape, ours, f"{batch / ours:.2f} clips/s", ratio)]
    if theirs is not None:
        rows.append((f"{name} (PyTorch)", shape, theirs, f"{batch / theirs:.2f} clips/s", "1.00x"))
    return rows


def jax_train_step(
    backbone, backbone_kwargs, backbone_variables, frames_u8, labels, *, num_classes, vmp_lambda, devices=None
):
    """The trainer's own step (`vmp_jax.training.steps.make_train_step`: shard_map over `devices`, default all, BN
    synced over them) with SGD-momentum, on one fixed batch; returns a function that runs one step and blocks.

    backbone_variables: {'params'[, 'batch_stats']} converted from PyTorch, or None for a random initialisation."""
    import jax
    import numpy as np
    import optax

    from vmp_jax.models import VideoClassifier
    from vmp_jax.training.mesh import AXIS, global_batch, make_mesh
    from vmp_jax.training.steps import initial_state, make_train_step

    mesh = make_mesh(devices)
    clf = VideoClassifier(
        num_classes=num_classes, backbone=backbone, backbone_kwargs=tuple(backbone_kwargs.items()), bn_axis_name=AXIS
    )
    variables = None
    if backbone_variables is not None:
        stats = backbone_variables.get("batch_stats", {})
        variables = {
            "params": {"vmp": {"m": np.float32(0.0), "n": np.float32(0.0)}, "backbone": backbone_variables["params"]},
            "batch_stats": {"backbone": stats} if stats else {},
        }
    tx = optax.sgd(0.01, momentum=0.9)
    state = initial_state(clf, tx, jax.random.key(0), (1, *frames_u8.shape[1:]), mesh, variables)
    step = make_train_step(mesh, clf, tx, vmp_lambda, lambda _: 0.01)
    batch = global_batch(mesh, {"frames": frames_u8, "label": labels.astype(np.int32)})
    holder = [state]

    def run():
        holder[0], metrics = step(holder[0], batch, jax.random.key(1))
        jax.block_until_ready(metrics)

    return run
