"""What the checksums of each checkpoint step (checksums.json, sha256 of every file) cost at save and restore.

Saves a train-state-like pytree of float32 arrays with `vmp_jax.training.checkpointing.Checkpoints` (asynchronous, as
training does) and times save() + wait() with the checksums and with `write_checksums` replaced by a no-op, the two
interleaved; then times writing and verifying the checksums of one saved step alone, and zlib.crc32 over the same
files as the cheaper hash it was compared with. Median of --runs after one warm-up save.

    python benchmarks/checkpoint_checksums.py --runs 7
"""

import argparse
import os
import statistics
import tempfile
import time
import zlib

import jax.numpy as jnp
import numpy as np

from vmp_jax.training import checkpointing


class _Iterator:
    def get_state(self):
        return {"position": 0}


def _state(megabytes: float) -> dict:
    """8 float32 arrays (random, so that nothing compresses) totalling `megabytes`."""
    rng = np.random.default_rng(0)
    n = int(megabytes * 2**20 / 4 / 8)
    return {
        "step": jnp.zeros((), jnp.int32),
        "params": {f"w{i}": jnp.asarray(rng.normal(size=n), jnp.float32) for i in range(8)},
    }


def _crc32_all(step_dir: str) -> None:
    for root, _, files in os.walk(step_dir):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                crc = 0
                while chunk := f.read(1 << 20):
                    crc = zlib.crc32(chunk, crc)


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(megabytes: float, runs: int, directory: str) -> dict:
    state = _state(megabytes)
    real = checkpointing.write_checksums
    checkpoints = checkpointing.Checkpoints(directory, keep_last=1, keep_best=0)
    times = {True: [], False: []}
    step = 0
    for i in range(2 * runs + 2):
        with_checksums = i % 2 == 0
        checkpointing.write_checksums = real if with_checksums else (lambda step_dir: None)
        step += 1
        elapsed = _timed(lambda step=step: (checkpoints.save(step, state, _Iterator()), checkpoints.wait()))
        if i >= 2:  # the first pair warms up
            times[with_checksums].append(elapsed)
    checkpointing.write_checksums = real
    checkpoints.close()
    step_dir = checkpoints.step_directory(step)
    real(step_dir)
    size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(step_dir) for f in fs)

    def median(fn):
        return statistics.median(_timed(fn) for _ in range(runs))

    return {
        "mb": size / 2**20,
        "plain": statistics.median(times[False]),
        "sha": statistics.median(times[True]),
        "write": median(lambda: real(step_dir)),
        "verify": median(lambda: checkpointing.checksum_problems(step_dir)),
        "crc32": median(lambda: _crc32_all(step_dir)),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes_mb", type=float, nargs="+", default=[4, 32, 256])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print(
        f"{'state MB':>9} {'save ms':>9} {'+sha256 ms':>11} {'overhead':>9} {'write ms':>9} {'MB/s':>7} "
        f"{'verify ms':>10} {'crc32 ms':>9}"
    )
    print("-" * 80)
    for megabytes in args.sizes_mb:
        with tempfile.TemporaryDirectory() as tmp:
            r = measure(megabytes, args.runs, os.path.join(tmp, "checkpoints"))
        print(
            f"{r['mb']:9.1f} {1e3 * r['plain']:9.1f} {1e3 * r['sha']:11.1f} {r['sha'] / r['plain'] - 1:8.1%} "
            f"{1e3 * r['write']:9.1f} {r['mb'] / r['write']:7.0f} {1e3 * r['verify']:10.1f} {1e3 * r['crc32']:9.1f}"
        )


if __name__ == "__main__":
    main()
