"""Benchmark of TimeSformer training: VMP + TimeSformer train step in JAX vs PyTorch, and TimeSformer-Base memory.

    python benchmarks/timesformer.py [--runs 5] [--workloads train,memory] [--cpu_devices N]

Prints one table: workload, shape, median seconds of --runs runs after a warm-up (compilation excluded; all JAX runs,
then all PyTorch runs), throughput in clips/s, and the ratio of the PyTorch time to ours (>1: we are faster).

Train step = uint8 -> standardised frames, VMP layer + TimeSformer (divided space-time) forward, cross-entropy +
lambda * temporal variation, backward, SGD-momentum update, at a CPU-sized TimeSformer (4 blocks of width 384, 6
heads, 16^2 patches, 8+1 frames of 96^2, batch 4). Ours is the trainer's own step
(`vmp_jax.training.steps.make_train_step`, shard_map over --cpu_devices CPU devices, one per core by default);
PyTorch's is `transformers`' TimesformerForVideoClassification (the same architecture and weights) behind a VMP
module written here, eager, torch's default threads.

Memory rows: TimeSformer-Base (12 x 768, 12 heads) on 8 x 224^2 clips at batch 8 (one device), train step
(VMP + forward + backward + SGD-momentum), float32 and bfloat16 compute, with and without `remat_policy=
'nothing_saveable'`: the sizes XLA reports for the compiled program (`jit(...).lower(...).compile()
.memory_analysis()`: arguments, outputs, temporaries; alias-free total), compiled for this machine's backend.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from timing import jax_train_step, train_step_rows

TRAIN = dict(depth=4, width=384, num_heads=6, patch_size=16, image_size=96, num_frames=8)
BATCH = 4
NUM_CLASSES = 400
LAMBDA = 0.1
BASE = dict(depth=12, width=768, num_heads=12, patch_size=16, image_size=224, num_frames=8)
BASE_BATCH = 8


def import_torch():
    try:
        import torch
        import transformers
    except ImportError:
        return None, None
    torch.set_flush_denormal(True)  # XLA:CPU flushes denormals; same rules on both sides (see benchmarks/x3d.py)
    return torch, transformers


def torch_net(torch, transformers):
    config = transformers.TimesformerConfig(
        image_size=TRAIN["image_size"],
        patch_size=TRAIN["patch_size"],
        num_channels=3,
        num_frames=TRAIN["num_frames"],
        hidden_size=TRAIN["width"],
        num_hidden_layers=TRAIN["depth"],
        num_attention_heads=TRAIN["num_heads"],
        intermediate_size=4 * TRAIN["width"],
        hidden_act="gelu",
        layer_norm_eps=1e-6,
        qkv_bias=True,
        attention_type="divided_space_time",
        num_labels=NUM_CLASSES,
    )
    torch.manual_seed(0)
    return transformers.TimesformerForVideoClassification(config)


def torch_train_step(torch, net, frames_np, labels_np):
    """VMP (the paper's formula, written here) + HF TimeSformer, cross-entropy + lambda * variation, SGD-momentum."""

    class VMP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = torch.nn.Parameter(torch.zeros(()))
            self.n = torch.nn.Parameter(torch.zeros(()))
            self.register_buffer("w", torch.tensor([0.299, 0.587, 0.114]))

        def forward(self, x):  # (B, T+1, 3, H, W) standardised
            grey = torch.einsum("btchw,c->bthw", x * 0.225 + 0.45, self.w)
            d = grey[:, 1:] - grey[:, :-1]
            att = torch.sigmoid(5.0 / (0.45 * torch.tanh(self.m).abs() + 0.1) * (d - 0.6 * torch.tanh(self.n)))
            variation = ((att[:, 1:] - att[:, :-1]) ** 2).mean()
            return att[:, :, None] * x[:, 1:], variation

    vmp = VMP()
    opt = torch.optim.SGD(list(vmp.parameters()) + list(net.parameters()), lr=0.01, momentum=0.9)
    net.train()
    frames = torch.from_numpy(np.ascontiguousarray(frames_np.transpose(0, 1, 4, 2, 3)))
    labels = torch.from_numpy(labels_np.astype(np.int64))

    def run():
        opt.zero_grad(set_to_none=True)
        prompts, variation = vmp((frames.float() / 255.0 - 0.45) / 0.225)
        loss = torch.nn.functional.cross_entropy(net(pixel_values=prompts).logits, labels) + LAMBDA * variation
        loss.backward()
        opt.step()

    return run


def train_rows(runs, torch, transformers):
    t1, size = TRAIN["num_frames"] + 1, TRAIN["image_size"]
    rng = np.random.default_rng(0)
    frames_np = rng.integers(0, 256, size=(BATCH, t1, size, size, 3), dtype=np.uint8)
    labels_np = rng.integers(0, NUM_CLASSES, size=(BATCH,))
    net = None if torch is None else torch_net(torch, transformers)
    from vmp_jax.convert import timesformer_from_torch

    converted = None if net is None else timesformer_from_torch(net.state_dict(), num_heads=TRAIN["num_heads"])
    kwargs = dict(TRAIN, drop_path_rate=0.0)
    ours_fn = jax_train_step(
        "timesformer", kwargs, converted, frames_np, labels_np, num_classes=NUM_CLASSES, vmp_lambda=LAMBDA
    )
    theirs_fn = None if net is None else torch_train_step(torch, net, frames_np, labels_np)
    shape = f"B={BATCH} T+1={t1} {size}x{size} {TRAIN['depth']}x{TRAIN['width']}"
    return train_step_rows("train step VMP+TimeSformer", shape, BATCH, ours_fn, theirs_fn, runs)


def memory_rows():
    """TimeSformer-Base train-step memory from XLA's analysis of the compiled program (nothing is run)."""
    from vmp_jax.data.transforms import standardize
    from vmp_jax.models import VideoClassifier
    from vmp_jax.training.steps import cross_entropy

    rows = []
    t1, size = BASE["num_frames"] + 1, BASE["image_size"]
    for dtype in ("float32", "bfloat16"):
        for remat in ("", "nothing_saveable"):
            clf = VideoClassifier(
                num_classes=NUM_CLASSES,
                backbone="timesformer",
                backbone_kwargs=tuple(dict(BASE, remat_policy=remat).items()),
                dtype=jnp.dtype(dtype),
            )
            params = jax.eval_shape(
                lambda r: clf.init({"params": r, "dropout": r}, jnp.zeros((1, t1, size, size, 3)), train=False),
                jax.random.key(0),
            )["params"]
            tx = optax.sgd(0.01, momentum=0.9)
            opt_state = jax.eval_shape(tx.init, params)

            def step(params, opt_state, frames, labels, rng):
                def loss_fn(p):
                    logits, variation = clf.apply({"params": p}, standardize(frames), train=True, rngs={"dropout": rng})
                    return cross_entropy(logits, labels) + LAMBDA * variation

                grads = jax.grad(loss_fn)(params)
                updates, opt_state = tx.update(grads, opt_state, params)
                return optax.apply_updates(params, updates), opt_state

            frames = jax.ShapeDtypeStruct((BASE_BATCH, t1, size, size, 3), jnp.uint8)
            labels = jax.ShapeDtypeStruct((BASE_BATCH,), jnp.int32)
            start = time.perf_counter()
            compiled = (
                jax.jit(step, donate_argnums=(0, 1))
                .lower(params, opt_state, frames, labels, jax.random.key(0))
                .compile()
            )
            seconds = time.perf_counter() - start
            m = compiled.memory_analysis()
            gib = lambda n: n / 2**30  # noqa: E731
            total = m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes
            rows.append(
                (
                    f"memory Base train step {dtype}{' remat' if remat else ''}",
                    f"B={BASE_BATCH} T+1={t1} {size}x{size}",
                    seconds,
                    f"args {gib(m.argument_size_in_bytes):.2f} + temp {gib(m.temp_size_in_bytes):.2f} GiB "
                    f"= {gib(total):.2f} GiB",
                    "(compile s)",
                )
            )
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workloads", default="train,memory")
    parser.add_argument("--cpu_devices", type=int, default=os.cpu_count())
    args = parser.parse_args()
    jax.config.update("jax_num_cpu_devices", args.cpu_devices)
    torch, transformers = import_torch()
    print(
        f"jax {jax.__version__} on {jax.device_count()} x {jax.devices()[0].device_kind} ({jax.default_backend()}); "
        f"torch {'absent' if torch is None else torch.__version__ + f' ({torch.get_num_threads()} threads)'}"
        f"{'' if transformers is None else ', transformers ' + transformers.__version__}"
    )
    load_before = os.getloadavg()[0]
    rows = []
    for w in args.workloads.split(","):
        if w == "train":
            rows += train_rows(args.runs, torch, transformers)
        elif w == "memory":
            rows += memory_rows()
        else:
            raise ValueError(f"workload {w!r}; expected a comma-separated subset of ['train', 'memory']")
    print(f"load average before/after (1 min): {load_before:.2f} / {os.getloadavg()[0]:.2f}")
    header = ("workload", "shape", "median s", "throughput", "PyTorch/ours")
    widths = [max(len(str(r[i])) if i != 2 else 8 for r in [header] + rows) for i in range(5)]
    line = lambda r: " | ".join(  # noqa: E731
        (f"{r[i]:.4f}" if isinstance(r[i], float) else str(r[i])).ljust(widths[i]) for i in range(5)
    )
    print(line(header))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(line(r))


if __name__ == "__main__":
    main()
