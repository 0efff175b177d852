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
