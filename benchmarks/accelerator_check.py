"""The accelerator check: what matters on one GPU or TPU VM, measured in one run (under 8 minutes), one table.

    benchmarks/accelerator_check.sh [--quick] [--runs 5]      # (the .sh runs this file from the repository root)

Rows (median of --runs runs after a warm-up that compiles; clips/s or GB/s; peak device memory after the row):
  train step, batch on device   the trainer's own step (vmp_jax.training.steps.make_train_step) on one fixed
                                device batch
  train step, real loop         the same step fed by the real input pipeline (procedural source, --workers grain
                                worker processes with their prefetch, global_batch), as the trainer's loop feeds it
      for the default recipe (X3D-XXS, 8+1 frames, 32^2, batch 16) and the X3D-S recipe shape (13+1 frames, 160^2,
      batch 16), each with model.dtype float32 and bfloat16
  depthwise conv                3x3x3 depthwise conv, 'lax' (grouped conv_general_dilated) vs 'shifted', forward and
                                forward+backward, on X3D-S's (8, 13, 40, 40, 108): which form the GPU default should be
  VMP layer                     forward and forward+backward on (8, 17, 224, 224, 3) against an elementwise floor
                                (x * 2 + 1: one read, one write), as GB/s and the fraction of the floor's GB/s
  input per core                X3D-S training clips (14 frames, 160^2 crops, benchmarks/input_pipeline.py) made on
                                one CPU core of this host, decoding an h264 file (602x256) and reading ArrayRecord
                                JPEG at the training short side (228), 1 clip per read; then the cores per
                                accelerator they imply: the x3d_s train step's clips/s (bfloat16, batch on device)
                                over each per-core rate
--quick: every shape small and the 'tiny' backbone in place of X3D (a CPU runs the whole table in about a minute);
the rows and columns are the same.
Uses only public JAX APIs that JAX 0.11 still has (jax.shard_map, jax.make_mesh, Device.memory_stats).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from timing import median_seconds  # noqa: E402

FULL = {
    "recipes": {"default": ("xxs", 16, 8, 32), "x3d_s": ("s", 16, 13, 160)},  # variant, batch, T, crop
    "depthwise": (8, 13, 40, 40, 108),
    "vmp": (8, 17, 224, 224, 3),
}
# --quick uses the 'tiny' backbone for both (an X3D train step compiles for about a minute on a 2-core CPU); the same
# code path otherwise, and the shape column says which backbone ran.
QUICK = {
    "recipes": {"default": ("tiny", 2, 2, 32), "x3d_s": ("tiny", 2, 3, 32)},
    "depthwise": (2, 4, 16, 16, 8),
    "vmp": (2, 5, 32, 32, 3),
}


def peak_memory() -> str:
    stats = jax.devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return f"{peak / 2**30:.2f} GiB" if peak is not None else "n/a"


def train_config(variant, batch, frames, crop, dtype, workers):
    from configs.default import get_config

    config = get_config()
    batch = max(batch, jax.device_count()) // jax.device_count() * jax.device_count()
    config.batch_size = config.eval_batch_size = batch
    config.num_frames = frames
    if variant == "tiny":
        config.model.backbone = "tiny"
    else:
        config.model.x3d.variant = variant
    config.model.dtype = dtype
    config.data.procedural.height = config.data.procedural.width = crop
    config.data.procedural.num_train = 64 * batch
    config.data.num_workers = workers
    return config


def train_rows(name, variant, batch, frames, crop, dtype, runs, loop_steps, workers):
    from vmp_jax.data import builders
    from vmp_jax.models import factory
    from vmp_jax.training import optim
    from vmp_jax.training.mesh import AXIS, global_batch, make_mesh
    from vmp_jax.training.steps import initial_state, make_train_step

    config = train_config(variant, batch, frames, crop, dtype, workers)
    data = builders.make_datasets(
        config.data,
        num_frames=frames + 1,
        global_batch_size=config.batch_size,
        eval_batch_size=config.eval_batch_size,
        seed=0,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
    )
    mesh = make_mesh()
    model = factory.build_model(config.model, data.num_classes, bn_axis_name=AXIS)
    shape = (1, frames + 1, crop, crop, 3)
    abstract = jax.eval_shape(lambda r: factory.init_variables(model, r, shape), jax.random.key(0))
    schedule = lambda _: 0.01  # noqa: E731
    tx = optim.make_optimizer("sgd", schedule, abstract["params"], momentum=0.9, weight_decay=1e-4)
    state = [initial_state(model, tx, jax.random.key(0), shape, mesh)]
    step = make_train_step(mesh, model, tx, config.vmp_lambda, schedule)
    it = iter(data.train)
    fixed = global_batch(mesh, next(it))
    rng = jax.random.key(1)

    def on_device():
        state[0], metrics = step(state[0], fixed, rng)
        jax.block_until_ready(metrics)

    def real_loop():  # several steps per timed call: the prefetch overlaps compute as in the loop
        for _ in range(loop_steps):
            state[0], metrics = step(state[0], global_batch(mesh, next(it)), rng)
        jax.block_until_ready(metrics)

    shape_text = f"{config.batch_size}x{frames + 1}x{crop}^2 {variant}"
    rows = []
    with jax.set_mesh(mesh):
        t = median_seconds(on_device, runs)
        rows.append(
            (
                f"train step, batch on device: {name}",
                dtype,
                shape_text,
                t,
                f"{config.batch_size / t:.1f} clips/s",
                peak_memory(),
            )
        )
        prediction = roofline_row(name, dtype, shape_text, step.lower(state[0], fixed, rng).compile(), t)
        if prediction is not None:
            rows.append(prediction)
        t = median_seconds(real_loop, runs) / loop_steps
        rows.append(
            (
                f"train step, real loop: {name}",
                dtype,
                shape_text,
                t,
                f"{config.batch_size / t:.1f} clips/s",
                peak_memory(),
            )
        )
    return rows


def roofline_row(name, dtype, shape_text, compiled, measured_s):
    """The compile-only prediction (vmp_jax.aot's roofline from XLA's cost analysis of the same compiled step) next
    to the measured step: how far the step is from the device's peak FLOP/s or HBM bandwidth. None (and a comment
    line with the step's FLOPs and bytes) on a device with no spec in vmp_jax.aot.DEVICE_KINDS, such as a CPU."""
    from vmp_jax import aot

    chip = aot.chip_of(jax.devices()[0].device_kind)
    flops, moved = aot.cost(compiled)
    memory = aot.Memory.of(compiled)
    if chip is None:
        print(
            f"# roofline: {name} {dtype}: {flops / 1e9:.2f} GFLOP, {moved / 1e9:.3f} GB per device and step, "
            f"{memory.total / 2**30:.2f} GiB compiled; no peak figures for {jax.devices()[0].device_kind}",
            flush=True,
        )
        return None
    predicted = max(flops / chip.peak_bf16_flops, moved / chip.hbm_bytes_per_s)
    what = (
        f"{flops / 1e9:.1f} GFLOP, {moved / 1e9:.2f} GB -> {1e3 * predicted:.3f} ms predicted; measured "
        f"{measured_s / predicted:.1f}x that"
    )
    return (f"roofline: {name}", dtype, shape_text, predicted, what, f"{memory.total / 2**30:.2f} GiB compiled")


def depthwise_rows(shape, runs):
    from vmp_jax.ops import depthwise_conv3d

    x = jax.random.normal(jax.random.key(0), shape, jnp.float32)
    k = jax.random.normal(jax.random.key(1), (3, 3, 3, shape[-1]), jnp.float32)
    nbytes = 2 * x.size * 4
    rows = []
    for impl in ("lax", "shifted"):
        fwd = jax.jit(lambda x, k, impl=impl: depthwise_conv3d(x, k, impl=impl))
        grad = jax.jit(jax.grad(lambda x, k, impl=impl: jnp.sum(depthwise_conv3d(x, k, impl=impl) ** 2), (0, 1)))
        for what, fn, moved in (("forward", fwd, nbytes), ("forward+backward", grad, 2 * nbytes)):
            t = median_seconds(lambda fn=fn: jax.block_until_ready(fn(x, k)), runs)
            rows.append(
                (
                    f"depthwise conv {impl}, {what}",
                    "float32",
                    "x".join(map(str, shape)),
                    t,
                    f"{moved / t / 1e9:.3g} GB/s",
                    peak_memory(),
                )
            )
    return rows


def vmp_rows(shape, runs):
    from vmp_jax.motion_prompt import motion_prompts

    frames = jax.random.normal(jax.random.key(0), shape, jnp.float32)
    m, n = jnp.float32(0.1), jnp.float32(0.2)
    cot = jnp.ones(shape[:1] + (shape[1] - 1,) + shape[2:], jnp.float32)
    forward = jax.jit(lambda x, m, n: motion_prompts(x, {"m": m, "n": n})[::2])
    grads = jax.jit(
        jax.grad(
            lambda x, m, n: (
                jnp.sum(motion_prompts(x, {"m": m, "n": n}).prompts * cot)
                + motion_prompts(x, {"m": m, "n": n}).variation
            ),
            (0, 1, 2),
        )
    )
    floor = jax.jit(lambda x: x * 2 + 1)
    fb, pb = frames.size * 4, cot.size * 4
    t_floor = median_seconds(lambda: jax.block_until_ready(floor(frames)), runs)
    floor_gbs = 2 * fb / t_floor / 1e9
    rows = [
        (
            "elementwise floor (x*2+1)",
            "float32",
            "x".join(map(str, shape)),
            t_floor,
            f"{floor_gbs:.3g} GB/s",
            peak_memory(),
        )
    ]
    for what, fn, moved in (("forward", forward, fb + pb), ("forward+backward", grads, 2 * (fb + pb))):
        t = median_seconds(lambda fn=fn: jax.block_until_ready(fn(frames, m, n)), runs)
        gbs = moved / t / 1e9
        rows.append(
            (
                f"VMP layer, {what}",
                "float32",
                "x".join(map(str, shape)),
                t,
                f"{gbs:.3g} GB/s = {gbs / floor_gbs:.2f} x floor",
                peak_memory(),
            )
        )
    return rows


def input_rows(runs, quick):
    """Clips/s of the X3D-S training transform on one CPU core (the last this process may use), per source."""
    import tempfile

    try:
        from input_pipeline import SETTINGS, clips_per_second, encode, generated_frames, prepare
    except ImportError as e:  # tensorflow-datasets / array-record / av not brought to this machine
        print(f"# input rows skipped: {e}", flush=True)
        return []
    from vmp_jax.data import tfds_builders
    from vmp_jax.data.video_sources import ClipTransform

    tmp = tempfile.mkdtemp(prefix="vmp_check_")
    path = os.path.join(tmp, "s256.mp4")
    encode(generated_frames(40 if quick else 250), path)
    prepare(os.path.join(tmp, "jpeg"), path, "jpeg", 228)
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    if allowed:  # before the source opens: its reader threads share the core
        os.sched_setaffinity(0, {max(allowed)})
    jpeg = tfds_builders.load_sources("video_manifest", "jpeg228", os.path.join(tmp, "jpeg", "tfds"), "train", "train")[
        0
    ]
    transform = ClipTransform(train=True, **SETTINGS["X3D-S 14x160^2"])  # (tunes malloc as a data worker's)
    rows = []
    try:
        for name, item_fn in (
            ("h264 602x256 file", lambda: {"path": path, "label": 0, "video_index": 0}),
            ("ArrayRecord JPEG at 228", lambda: jpeg[0]),
        ):
            clips = 4 if quick else 20
            rate = clips_per_second(transform, item_fn, clips, runs)
            rows.append((f"input per core: {name}", "uint8", "14x160^2 X3D-S", 1 / rate, f"{rate:.1f} clips/s", "-"))
    finally:
        if allowed:
            os.sched_setaffinity(0, allowed)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small shapes: runs end to end on a CPU in < 1 min")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="grain worker processes of the real loop (data.num_workers); default: what data.num_workers=-1 "
        "gives on this host (one per available core less one; 0 with --quick)",
    )
    args = parser.parse_args()
    if args.workers is None:
        from vmp_jax.data import host_cores

        args.workers = 0 if args.quick else host_cores.auto_num_workers()
    sizes = QUICK if args.quick else FULL
    device = jax.devices()[0]
    print(
        f"# accelerator check {'(--quick) ' if args.quick else ''}on {jax.device_count()} x {device.device_kind} "
        f"({jax.default_backend()}), jax {jax.__version__}, Python {platform.python_version()}, "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC}; real loop: {args.workers} grain "
        f"worker(s), procedural clips",
        flush=True,
    )
    started = time.perf_counter()
    rows = []
    for name, (variant, batch, frames, crop) in sizes["recipes"].items():
        for dtype in ("float32", "bfloat16"):
            rows += train_rows(
                name, variant, batch, frames, crop, dtype, args.runs, 2 if args.quick else 5, args.workers
            )
            print(f"# {time.perf_counter() - started:.0f} s: {rows[-1][0]} {dtype}", file=sys.stderr, flush=True)
    rows += depthwise_rows(sizes["depthwise"], args.runs)
    print(f"# {time.perf_counter() - started:.0f} s: depthwise", file=sys.stderr, flush=True)
    rows += vmp_rows(sizes["vmp"], args.runs)
    print(f"# {time.perf_counter() - started:.0f} s: VMP layer", file=sys.stderr, flush=True)
    inputs = input_rows(args.runs, args.quick)
    rows += inputs
    header = ("workload", "dtype", "shape", "median s", "throughput", "peak device memory")
    table = [header] + [(r[0], r[1], r[2], f"{r[3]:.3g}", r[4], r[5]) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths)))
        if i == 0:
            print("-|-".join("-" * w for w in widths))
    train_rate = next(
        float(r[4].split()[0]) for r in rows if r[0] == "train step, batch on device: x3d_s" and r[1] == "bfloat16"
    )
    for row in inputs:
        per_core = float(row[4].split()[0])
        print(
            f"# cores per accelerator for the x3d_s train step ({train_rate:.1f} clips/s, bfloat16, batch on device), "
            f"{row[0].split(': ')[1]}: {train_rate / per_core:.1f}"
        )
    print(f"# total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
