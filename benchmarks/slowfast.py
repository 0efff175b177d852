"""Benchmark of SlowFast training: VMP + SlowFast 8x8 R50 train step in JAX vs PyTorch (PyTorchVideo).

    python benchmarks/slowfast.py [--runs 5] [--workloads b2_112,b1_160] [--convs]

Prints one table: workload, shape, median seconds of --runs runs after a warm-up (compilation excluded; all JAX runs,
then all PyTorch runs), clips/s, and the ratio of the PyTorch time to ours in the same run (>1: we are faster).

Train step = uint8 -> standardised frames, VMP layer + SlowFast forward (the pathway split inside), cross-entropy +
lambda * temporal variation, backward, SGD-momentum update; ours is the trainer's own step
(`vmp_jax.training.steps.make_train_step`: shard_map over --cpu_devices CPU devices, BN synced over them; batch 1
runs on one).
The PyTorch side is
PyTorchVideo's `create_slowfast` behind PySlowFast's PackPathway split, with the same VMP module as
benchmarks/x3d.py; both start from the same weights (converted from the PyTorch model), and torch flushes denormals
as XLA does. 8x8 R50 at 32 prompts (33 frames): batch 2 at 112² and batch 1 at 160² (224² does not fit the
benchmark's time on a 2-core CPU). `--convs` adds forward + input and kernel gradient timings of single convs of that
step in the model's forms and as XLA 3-D convs (`lax.conv_general_dilated`), the choice the model file describes.
"""

from __future__ import annotations

import argparse
import os

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from timing import jax_train_step, median_seconds, train_step_rows
from x3d import LAMBDA, NUM_CLASSES, import_torch_x3d, torch_train_step

from vmp_jax.convert import slowfast_from_torch
from vmp_jax.models.slowfast import Conv

TRAIN = {"b2_112": (2, 33, 112), "b1_160": (1, 33, 160)}  # workload -> (batch, frames incl. the VMP frame, crop)
ALPHA = 4


def packed_slowfast(torch):
    """PyTorchVideo's SlowFast R50 8x8 taking one (B, 3, T, H, W) clip, split as PySlowFast's PackPathway does."""
    from pytorchvideo.models.slowfast import create_slowfast

    class Packed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = create_slowfast(
                model_depth=50, model_num_class=NUM_CLASSES, head_pool=torch.nn.AdaptiveAvgPool3d
            )

        def forward(self, x):
            t = x.shape[2]
            slow = torch.index_select(x, 2, torch.linspace(0, t - 1, t // ALPHA).long())
            return self.net([slow, x])

    return Packed()


def train_rows(workload, runs, torch):
    batch, t1, crop = TRAIN[workload]
    rng = np.random.default_rng(0)
    frames_np = rng.integers(0, 256, size=(batch, t1, crop, crop, 3), dtype=np.uint8)
    labels_np = rng.integers(0, NUM_CLASSES, size=(batch,))
    net = None
    if torch is not None:
        torch.manual_seed(0)
        net = packed_slowfast(torch)
    converted = None if net is None else slowfast_from_torch(net.net.state_dict(), alpha=ALPHA)
    # One device per clip at most: a batch of 1 runs on one core (the trainer needs the batch to divide the mesh).
    devices = jax.devices()[: min(len(frames_np), jax.device_count())]
    ours_fn = jax_train_step(
        "slowfast",
        {"alpha": ALPHA},
        converted,
        frames_np,
        labels_np,
        num_classes=NUM_CLASSES,
        vmp_lambda=LAMBDA,
        devices=devices,
    )
    theirs_fn = None if net is None else torch_train_step(torch, net, frames_np, labels_np)
    shape = f"B={batch} T+1={t1} {crop}x{crop}"
    return train_step_rows("train step SlowFast 8x8 R50", shape, batch, ours_fn, theirs_fn, runs)


# Convs of the 8x8 R50 train step at batch 2, 112² input: name -> (input shape, features, kernel, strides).
CONVS = {
    "fast stem 5x7x7/2": ((2, 32, 112, 112, 3), 8, (5, 7, 7), (1, 2, 2)),
    "fast res2 conv_a 3x1x1": ((2, 32, 28, 28, 32), 8, (3, 1, 1), (1, 1, 1)),
    "fusion 7x1x1/4": ((2, 32, 28, 28, 32), 64, (7, 1, 1), (4, 1, 1)),
    "slow res3 conv_b 1x3x3/2": ((2, 8, 28, 28, 128), 128, (1, 3, 3), (1, 2, 2)),
    "slow res4 conv_a 3x1x1": ((2, 8, 7, 7, 576), 256, (3, 1, 1), (1, 1, 1)),
}


def conv_rows(runs):
    """Value + input and kernel gradients of single convs: the model's forms vs XLA's 3-D conv."""
    rows = []
    for name, (shape, features, kernel, strides) in CONVS.items():
        x = jnp.asarray(np.random.default_rng(0).normal(size=shape).astype(np.float32))
        conv = Conv(features, kernel, strides)
        w = conv.init(jax.random.key(0), x)["params"]["kernel"]
        forms = {
            "ours": lambda x, w: conv.apply({"params": {"kernel": w}}, x),
            "lax 3-D": lambda x, w: lax.conv_general_dilated(
                x, w, strides, [(k // 2, k // 2) for k in kernel], dimension_numbers=("NDHWC", "DHWIO", "NDHWC")
            ),
        }
        timed = {}
        for form, f in forms.items():
            grad = jax.jit(jax.grad(lambda x, w, f=f: jnp.sum(f(x, w) ** 2), argnums=(0, 1)))
            timed[form] = median_seconds(lambda: jax.block_until_ready(grad(x, w)), runs)
        for form, sec in timed.items():
            rows.append(
                (
                    f"{name} fwd+bwd, {form}",
                    "x".join(map(str, shape)),
                    sec,
                    "",
                    f"{timed['lax 3-D'] / sec:.2f}x (lax 3-D/this)",
                )
            )
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workloads", default="b2_112,b1_160")
    parser.add_argument("--convs", action="store_true")
    parser.add_argument(
        "--cpu_devices",
        type=int,
        default=os.cpu_count(),
        help="JAX CPU devices the train step is data-parallel over (the trainer's default)",
    )
    args = parser.parse_args()
    jax.config.update("jax_num_cpu_devices", args.cpu_devices)  # before JAX starts its backends
    torch, _ = import_torch_x3d()  # also sets flush-denormal and the torchvision stand-in
    print(
        f"jax {jax.__version__} on {jax.device_count()} x {jax.devices()[0].device_kind} ({jax.default_backend()}); "
        f"torch {'absent' if torch is None else torch.__version__ + f' ({torch.get_num_threads()} threads)'}"
    )
    load_before = os.getloadavg()[0]
    rows = []
    for w in [w for w in args.workloads.split(",") if w]:
        if w not in TRAIN:
            raise ValueError(f"workload {w!r}; expected a comma-separated subset of {list(TRAIN)}")
        rows += train_rows(w, args.runs, torch)
    if args.convs:
        rows += conv_rows(args.runs)
    print(f"load average before/after (1 min): {load_before:.2f} / {os.getloadavg()[0]:.2f}")
    header = ("workload", "shape", "median s", "throughput", "PyTorch/ours")
    widths = [max(len(str(r[i])) if i != 2 else 8 for r in [header] + rows) for i in range(5)]
    line = lambda r: " | ".join(
        (f"{r[i]:.4f}" if isinstance(r[i], float) else str(r[i])).ljust(widths[i]) for i in range(5)
    )
    print(line(header))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(line(r))


if __name__ == "__main__":
    main()
