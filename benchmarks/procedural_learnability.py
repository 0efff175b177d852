"""Is the procedural default learnable on a CPU in minutes? A 3-layer Conv3D on raw frames vs frame differences.

  python benchmarks/procedural_learnability.py [--steps=300 --size=32 --frames=9 --batch=16]

Trains each input variant for --steps Adam steps on the procedural train split (make_datasets with the default
data config) and prints eval top-1 on 256 eval clips, the wall time and the steps/s. Frame differences stand in
for the VMP layer (which the real model puts in front of X3D); raw frames for the no-VMP baseline.
"""

from __future__ import annotations

import argparse
import time

import flax.linen as nn
import jax
import numpy as np
import optax

from vmp_jax import data


class TinyConv3D(nn.Module):
    num_classes: int
    differences: bool

    @nn.compact
    def __call__(self, frames):
        x = data.standardize(frames)
        x = x[:, 1:] - x[:, :-1] if self.differences else x[:, 1:]
        for features, strides in ((16, (1, 2, 2)), (32, (1, 2, 2)), (64, (2, 2, 2))):
            x = nn.relu(nn.Conv(features, (3, 3, 3), strides=strides)(x))
        return nn.Dense(self.num_classes)(x.mean(axis=(1, 2, 3)))


def run(differences: bool, args) -> tuple[float, float, int]:
    cfg = data.default_data_config()
    cfg.procedural.update(num_train=4096, num_eval=256, height=args.size, width=args.size)
    splits = data.make_datasets(cfg, num_frames=args.frames, global_batch_size=args.batch, eval_batch_size=64, seed=0)
    model = TinyConv3D(splits.num_classes, differences)
    it = iter(splits.train)
    params = model.init(jax.random.key(0), next(it)["frames"])
    opt = optax.adam(args.lr)
    opt_state = opt.init(params)

    @jax.jit
    def step(params, opt_state, frames, labels):
        def loss_fn(p):
            return optax.softmax_cross_entropy_with_integer_labels(model.apply(p, frames), labels).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    start = time.perf_counter()
    for _ in range(args.steps):
        batch = next(it)
        params, opt_state, _ = step(params, opt_state, batch["frames"], batch["label"])
    jax.block_until_ready(params)
    seconds = time.perf_counter() - start
    acc = data.MultiViewAccumulator(splits.num_classes, splits.eval_num_views)
    for batch in splits.eval:
        acc.update(
            np.asarray(model.apply(params, batch["frames"])), batch["video_index"], batch["label"], batch["mask"]
        )
    return acc.result()["top1"], seconds, splits.num_classes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    args = parser.parse_args()
    print(
        f"# procedural learnability, {args.frames}x{args.size}^2, batch {args.batch}, {args.steps} Adam steps "
        f"(lr {args.lr}), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    print("| input | eval top-1 | chance | train time (s) | steps/s |")
    print("|---|---|---|---|---|")
    for differences in (True, False):
        top1, seconds, num_classes = run(differences, args)
        print(
            f"| {'frame differences' if differences else 'raw frames'} | {top1:.3f} | {1 / num_classes:.3f} | "
            f"{seconds:.0f} | {args.steps / seconds:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
