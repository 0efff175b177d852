"""Benchmark of X3D training: VMP + X3D train step in JAX vs PyTorch (PyTorchVideo), and the depthwise conv.

    python benchmarks/x3d.py [--runs 5] [--workloads s,xs,depthwise] [--lax_runs 1]

Prints one table: workload, shape, median seconds of --runs runs after a warm-up (compilation excluded; all JAX runs,
then all PyTorch runs), throughput (clips/s for
train steps, GB/s of input read + output written for convs), and the ratio of the PyTorch time to ours in the same
run (>1 means we are faster).

Train step = uint8 -> standardised frames, VMP layer + X3D forward, cross-entropy + lambda * temporal variation,
backward, SGD-momentum update; ours is the trainer's own step (`vmp_jax.training.steps.make_train_step`: shard_map over
--cpu_devices CPU devices, one per core by default, BN synced over them). X3D-S at batch 2, 14 frames (13 prompts)
x 160^2 and X3D-XS at batch 4, 5 frames x 160^2. Both sides start from the same weights (converted from the
PyTorch model). The PyTorch side needs torch + pytorchvideo (without torchvision, a stand-in `torchvision.ops` is
registered; X3D does not use it). The depthwise rows time a 3x3x3 depthwise conv on (8, 13, 40, 40, 108) as in
issue 3 (the grouped `lax` conv is run --lax_runs times only: it takes ~20 s on a 2-core CPU).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
from timing import jax_train_step, median_seconds, train_step_rows

from vmp_jax.convert import x3d_from_torch
from vmp_jax.ops import depthwise_conv3d

TRAIN = {"s": (2, 14, 160), "xs": (4, 5, 160)}  # variant -> (batch, frames incl. the extra VMP frame, crop)
NUM_CLASSES = 400
LAMBDA = 0.1  # weight of the temporal variation in the loss; any value times the same work


def import_torch_x3d():
    """(torch, create_x3d) or (None, None) when torch/pytorchvideo are missing."""
    try:
        import torch
    except ImportError:
        return None, None
    # XLA:CPU flushes denormals to zero; PyTorch by default does not, and its first steps from a fresh init then
    # run 10-50x slower in denormal arithmetic (measured: 36 s, 28 s, 7 s, 5 s, then 0.74 s for X3D-XS). Same
    # rules for both; set before torch starts its worker threads, which copy the flag when they are created.
    torch.set_flush_denormal(True)
    if "torchvision" not in sys.modules and importlib.util.find_spec("torchvision") is None:
        tv, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")
        ops.RoIAlign = type("RoIAlign", (), {})
        tv.ops = ops
        sys.modules["torchvision"], sys.modules["torchvision.ops"] = tv, ops
    try:
        from pytorchvideo.models.x3d import create_x3d
    except ImportError:
        return None, None
    return torch, create_x3d


def torch_train_step(torch, net, frames_np, labels_np):
    """The same step in PyTorch: uint8 -> standardised, a VMP module written here (the paper's formula),
    PyTorchVideo's X3D, cross-entropy + lambda * variation, SGD-momentum. Eager, torch's default threads."""

    class VMP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = torch.nn.Parameter(torch.zeros(()))
            self.n = torch.nn.Parameter(torch.zeros(()))
            self.register_buffer("w", torch.tensor([0.299, 0.587, 0.114]))

        def forward(self, x):  # x: (B, T+1, 3, H, W) standardised
            grey = torch.einsum("btchw,c->bthw", x * 0.225 + 0.45, self.w)
            d = grey[:, 1:] - grey[:, :-1]
            a = 5.0 / (0.45 * torch.tanh(self.m).abs() + 0.1)
            b = 0.6 * torch.tanh(self.n)
            att = torch.sigmoid(a * (d - b))
            prompts = att[:, :, None] * x[:, 1:]
            variation = ((att[:, 1:] - att[:, :-1]) ** 2).mean() if att.shape[1] > 1 else att.new_zeros(())
            return prompts, variation

    vmp = VMP()
    params = list(vmp.parameters()) + list(net.parameters())
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    net.train()
    frames = torch.from_numpy(np.ascontiguousarray(frames_np.transpose(0, 1, 4, 2, 3)))  # uint8, as loaded
    labels = torch.from_numpy(labels_np.astype(np.int64))

    def run():
        opt.zero_grad(set_to_none=True)
        prompts, variation = vmp((frames.float() / 255.0 - 0.45) / 0.225)
        logits = net(prompts.permute(0, 2, 1, 3, 4))
        loss = torch.nn.functional.cross_entropy(logits, labels) + LAMBDA * variation
        loss.backward()
        opt.step()

    return run


def train_rows(variant, runs, torch, create_x3d):
    batch, t1, crop = TRAIN[variant]
    rng = np.random.default_rng(0)
    frames_np = rng.integers(0, 256, size=(batch, t1, crop, crop, 3), dtype=np.uint8)
    labels_np = rng.integers(0, NUM_CLASSES, size=(batch,))
    net = None
    if torch is not None:
        torch.manual_seed(0)
        net = create_x3d(
            input_clip_length=t1 - 1, input_crop_size=crop, model_num_class=NUM_CLASSES, head_activation=None
        )
    converted = None if net is None else x3d_from_torch(net.state_dict(), variant=variant)
    ours_fn = jax_train_step(
        "x3d", {"variant": variant}, converted, frames_np, labels_np, num_classes=NUM_CLASSES, vmp_lambda=LAMBDA
    )
    theirs_fn = None if net is None else torch_train_step(torch, net, frames_np, labels_np)
    # All JAX runs, then all PyTorch runs: the two runtimes' worker threads never share the cores.
    shape = f"B={batch} T+1={t1} {crop}x{crop}"
    return train_step_rows(f"train step X3D-{variant.upper()}", shape, batch, ours_fn, theirs_fn, runs)


def depthwise_rows(runs, lax_runs, torch):
    shape, taps = (8, 13, 40, 40, 108), (3, 3, 3)
    rng = np.random.default_rng(0)
    x_np = rng.normal(size=shape).astype(np.float32)
    k_np = rng.normal(size=(*taps, shape[-1])).astype(np.float32)
    x, k = jnp.asarray(x_np), jnp.asarray(k_np)
    gbytes = 2 * x_np.nbytes / 1e9  # read input + write output (forward); backward moves about twice that
    fwd = {impl: jax.jit(lambda x, k, impl=impl: depthwise_conv3d(x, k, impl=impl)) for impl in ("shifted", "lax")}
    bwd = {
        impl: jax.jit(jax.grad(lambda x, k, impl=impl: jnp.sum(depthwise_conv3d(x, k, impl=impl) ** 2), argnums=(0, 1)))
        for impl in ("shifted", "lax")
    }
    timed = {}
    timed["fwd shifted"] = median_seconds(lambda: jax.block_until_ready(fwd["shifted"](x, k)), runs)
    timed["fwd+bwd shifted"] = median_seconds(lambda: jax.block_until_ready(bwd["shifted"](x, k)), runs)
    if lax_runs:
        timed["fwd lax grouped"] = median_seconds(lambda: jax.block_until_ready(fwd["lax"](x, k)), lax_runs)
    torch_t = {}
    if torch is not None:
        xt = torch.from_numpy(np.ascontiguousarray(x_np.transpose(0, 4, 1, 2, 3))).requires_grad_(True)
        wt = torch.from_numpy(np.ascontiguousarray(k_np.transpose(3, 0, 1, 2)[:, None])).requires_grad_(True)
        conv = lambda: torch.nn.functional.conv3d(xt, wt, padding=1, groups=shape[-1])

        def torch_bwd():
            xt.grad = wt.grad = None
            (conv() ** 2).sum().backward()

        with torch.no_grad():
            torch_t["fwd"] = median_seconds(conv, runs)
        torch_t["fwd+bwd"] = median_seconds(torch_bwd, runs)
    rows = []
    for name, sec in timed.items():
        kind = name.split()[0]
        ratio = f"{torch_t[kind] / sec:.2f}x" if kind in torch_t else ""
        n = lax_runs if "lax" in name else runs
        rows.append(
            (
                f"depthwise 3x3x3 {name}" + (f" (n={n})" if n != runs else ""),
                "x".join(map(str, shape)),
                sec,
                f"{gbytes * (2 if 'bwd' in name else 1) / sec:.2f} GB/s",
                ratio,
            )
        )
    for kind, sec in torch_t.items():
        rows.append(
            (
                f"depthwise 3x3x3 {kind} PyTorch",
                "x".join(map(str, shape)),
                sec,
                f"{gbytes * (2 if 'bwd' in kind else 1) / sec:.2f} GB/s",
                "1.00x",
            )
        )
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--lax_runs", type=int, default=1, help="runs of the (very slow on CPU) grouped lax conv")
    parser.add_argument("--workloads", default="s,xs,depthwise")
    parser.add_argument(
        "--cpu_devices",
        type=int,
        default=os.cpu_count(),
        help="JAX CPU devices the train step is data-parallel over (one XLA:CPU program runs "
        "mostly on one core, so one device per core, as the trainer does)",
    )
    args = parser.parse_args()
    jax.config.update("jax_num_cpu_devices", args.cpu_devices)  # before JAX starts its backends
    torch, create_x3d = import_torch_x3d()
    print(
        f"jax {jax.__version__} on {jax.device_count()} x {jax.devices()[0].device_kind} ({jax.default_backend()}); "
        f"torch {'absent' if torch is None else torch.__version__ + f' ({torch.get_num_threads()} threads)'}"
    )
    load_before = os.getloadavg()[0]
    rows = []
    for w in args.workloads.split(","):
        if w in TRAIN:
            rows += train_rows(w, args.runs, torch, create_x3d)
        elif w == "depthwise":
            rows += depthwise_rows(args.runs, args.lax_runs, torch)
        else:
            raise ValueError(f"workload {w!r}; expected a comma-separated subset of {[*TRAIN, 'depthwise']}")
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
