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
