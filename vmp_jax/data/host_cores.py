"""How many grain worker processes this process should start: the CPU cores it may use, less one for itself.

`data.num_workers = -1` (and `data.eval_num_workers = -1`) resolve here. The cores are this process's CPU
affinity (what `taskset`, SLURM's `--cpus-per-task` binding or a container's cpuset allow). When the affinity is
the whole machine but several training processes share the host (one per GPU: SLURM tasks per node,
`LOCAL_WORLD_SIZE`, Open MPI's local size), each takes an equal share. One core stays with the training process
itself (the step loop, the device transfers, XLA's host work); with fewer than MIN_CORES_FOR_WORKERS cores the
decoding runs in the training process's read threads instead (on 2 cores, 0, 1 and 2 workers were within the
run-to-run spread of each other; benchmarks/RESULTS.md, "Input pipeline").
"""

from __future__ import annotations

import os
import re

AUTO = -1
MIN_CORES_FOR_WORKERS = 3
# Environment variables that give the number of training processes on this host, first found wins.
_LOCAL_PROCESS_VARS = (
    "LOCAL_WORLD_SIZE",
    "OMPI_COMM_WORLD_LOCAL_SIZE",
    "SLURM_NTASKS_PER_NODE",
    "SLURM_TASKS_PER_NODE",
)


def _first_count(value: str) -> int | None:
    """'4' -> 4; SLURM's '4(x2),3' (tasks on each node, this node's first) -> 4; anything else -> None."""
    match = re.match(r"\s*(\d+)", value)
    return int(match.group(1)) if match else None


def local_processes(environ=None) -> int:
    """Training processes on this host, from the launcher's environment (1 when none says)."""
    environ = os.environ if environ is None else environ
    for name in _LOCAL_PROCESS_VARS:
        count = _first_count(environ.get(name, ""))
        if count:
            return count
    return 1


def available_cores(environ=None) -> int:
    """CPU cores this process may use: its affinity, or an equal share of the machine among the local processes."""
    machine = os.cpu_count() or 1
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else machine
    if allowed < machine:  # already bound to its share (taskset, SLURM binding, a cpuset)
        return allowed
    return max(1, machine // local_processes(environ))


def auto_num_workers(cores: int | None = None) -> int:
    """Worker processes for `cores` cores (default: `available_cores()`): cores - 1, or 0 below
    MIN_CORES_FOR_WORKERS."""
    cores = available_cores() if cores is None else cores
    return cores - 1 if cores >= MIN_CORES_FOR_WORKERS else 0


def resolve_num_workers(value: int, what: str = "data.num_workers") -> int:
    """A configured worker count: >= 0 as given, AUTO (-1) from the cores; anything else is an error naming `what`."""
    if value == AUTO:
        return auto_num_workers()
    if value < 0:
        raise ValueError(f"{what}={value}; expected >= 0, or {AUTO} for one per available CPU core less one")
    return int(value)
