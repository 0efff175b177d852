"""Benchmark of the VMP layer: forward and forward+backward against an elementwise floor and eager PyTorch.

    python benchmarks/motion_prompt.py [--batch 8 --frames 17 --size 224 --runs 7]

Prints one table: workload, dtype, median time of --runs runs after a warm-up, bytes moved / time, and the
ratios to (a) a same-size elementwise op in JAX on the same device (the practical floor: one read of the
frames, one write of the same size) and (b) an eager PyTorch implementation of the same formula (written
below, following the paper's reference layer), when torch is installed. Runs unchanged on CPU and GPU.

Bytes moved: forward = frames read + prompts written; forward+backward = that + the prompts' cotangent read
+ the frames' gradient written.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from timing import median_seconds

from vmp_jax.motion_prompt import motion_prompts


def jax_workloads(frames, m, n):
    forward = jax.jit(lambda x, m, n: motion_prompts(x, {"m": m, "n": n})[::2])  # prompts and variation

    def objective(x, m, n, cotangent):
        out = motion_prompts(x, {"m": m, "n": n})
        return jnp.sum(out.prompts.astype(jnp.float32) * cotangent) + out.variation

    grads = jax.jit(jax.grad(objective, argnums=(0, 1, 2)))
    floor = jax.jit(lambda x: x * 2 + 1)
    cotangent = jnp.ones(frames.shape[:1] + (frames.shape[1] - 1,) + frames.shape[2:], jnp.float32)
    return {
        "forward": lambda: jax.block_until_ready(forward(frames, m, n)),
        "forward+backward": lambda: jax.block_until_ready(grads(frames, m, n, cotangent)),
        "elementwise floor": lambda: jax.block_until_ready(floor(frames)),
    }


def torch_workloads(frames_np, dtype_name):
    """An eager PyTorch VMP (channels-first like the reference: (B, T+1, 3, H, W)), or {} without torch."""
    try:
        import torch
    except ImportError:
        return {}
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype_name]
    frames = torch.from_numpy(np.ascontiguousarray(np.moveaxis(frames_np, -1, 2))).to(dtype)
    m = torch.nn.Parameter(torch.tensor(0.3))
    n = torch.nn.Parameter(torch.tensor(-0.2))
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 1, 3, 1, 1)

    def layer(x):
        grey = ((x.float() * 0.225 + 0.45) * weights).sum(dim=2)
        d = grey[:, 1:] - grey[:, :-1]
        a = 5.0 / (0.45 * torch.abs(torch.tanh(m)) + 0.1)
        b = 0.6 * torch.tanh(n)
        att = torch.sigmoid(a * (d - b))
        prompts = (att.unsqueeze(2) * x[:, 1:].float()).to(x.dtype)
        variation = ((att[:, 1:] - att[:, :-1]) ** 2).mean()
        return prompts, variation

    def forward():
        with torch.no_grad():
            layer(frames)

    grad_frames = frames.clone().requires_grad_(True)

    def forward_backward():
        prompts, variation = layer(grad_frames)
        (prompts.float().sum() + variation).backward()
        grad_frames.grad = None
        m.grad = n.grad = None

    return {"forward": forward, "forward+backward": forward_backward}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=17, help="T+1 frames per clip")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    shape = (args.batch, args.frames, args.size, args.size, 3)
    rng = np.random.default_rng(0)
    frames_np = ((rng.uniform(0, 1, shape) - 0.45) / 0.225).astype(np.float32)
    m, n = jnp.float32(0.3), jnp.float32(-0.2)
    print(
        f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), jax {jax.__version__}, "
        f"shape {shape}, median of {args.runs} runs after warm-up"
    )
    header = f"{'workload':<20}{'dtype':<10}{'jax ms':>9}{'GB/s':>8}{'x floor':>9}{'torch ms':>10}{'speed-up':>10}"
    print(header)
    print("-" * len(header))
    for dtype_name in ("float32", "bfloat16"):
        dtype = jnp.dtype(dtype_name)
        frames = jnp.asarray(frames_np, dtype)
        itemsize = dtype.itemsize
        in_bytes = frames.size * itemsize
        out_bytes = in_bytes * (args.frames - 1) // args.frames
        moved = {
            "forward": in_bytes + out_bytes,
            "forward+backward": 2 * (in_bytes + out_bytes),
            "elementwise floor": 2 * in_bytes,
        }
        ours = {k: median_seconds(f, args.runs, warmup=2) for k, f in jax_workloads(frames, m, n).items()}
        theirs = {k: median_seconds(f, args.runs, warmup=2) for k, f in torch_workloads(frames_np, dtype_name).items()}
        for name, seconds in ours.items():
            torch_s = theirs.get(name)
            print(
                f"{name:<20}{dtype_name:<10}{seconds * 1e3:>9.1f}{moved[name] / seconds / 1e9:>8.2f}"
                f"{seconds / ours['elementwise floor']:>9.2f}"
                f"{(f'{torch_s * 1e3:.1f}' if torch_s else '-'):>10}"
                f"{(f'{torch_s / seconds:.2f}x' if torch_s else '-'):>10}"
            )


if __name__ == "__main__":
    main()
