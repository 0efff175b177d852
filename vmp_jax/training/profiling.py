"""`config.profile_steps='A,B'`: a `jax.profiler` trace of train steps A..B (1-based, inclusive) in WORKDIR/profile.

Open it with TensorBoard's profile plugin (`tensorboard --logdir WORKDIR/profile`) or Perfetto (the .xplane.pb).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import jax


def parse_steps(text: str) -> tuple[int, int] | None:
    """'A,B' -> (A, B) with 1 <= A <= B; '' -> None; ValueError naming the value otherwise."""
    if not text.strip():
        return None
    parts = text.split(",")
    try:
        first, last = (int(p) for p in parts)
    except ValueError:
        first, last = 0, -1
    if len(parts) != 2 or not 1 <= first <= last:
        raise ValueError(
            f"profile_steps={text!r}: expected 'A,B', the first and last train step to trace, "
            "1 <= A <= B (e.g. '10,12')"
        )
    return first, last


def traced(
    step_fn: Callable[..., Any], steps: tuple[int, int] | None, logdir: str, start_step: int
) -> Callable[..., Any]:
    """`step_fn` (one call = one train step; the first call makes step `start_step + 1`), tracing steps `steps`
    into `logdir`: the trace starts before step A's call and stops once step B's results are computed."""
    if steps is None or steps[1] <= start_step:
        return step_fn
    first, last = max(steps[0], start_step + 1), steps[1]
    step = start_step

    def run(*args):
        nonlocal step
        step += 1
        if step == first:
            os.makedirs(logdir, exist_ok=True)
            jax.profiler.start_trace(logdir)
        try:
            out = step_fn(*args)
        except BaseException:  # e.g. a stop signal while waiting for the batch: close the trace, if one is open
            if first <= step <= last:
                jax.profiler.stop_trace()
            raise
        if step == last:
            jax.block_until_ready(out)
            jax.profiler.stop_trace()
        return out

    return run
