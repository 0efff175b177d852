"""Starting JAX's runtime: CPU device count, and the multi-process runtime (from flags or a detected cluster)."""

from __future__ import annotations

import os

import jax
from absl import logging

def cpu_device_count(cores: int, batch_sizes) -> int:
    """The largest n <= cores dividing every batch size (one XLA:CPU device per core)."""
    return max(n for n in range(1, max(cores, 1) + 1) if all(b % n == 0 for b in batch_sizes))


def set_cpu_devices(requested: int, batch_sizes) -> str | None:
    """Before any JAX computation: `requested` CPU devices per process (-1: one per core, as many as divide
    `batch_sizes`; 0: JAX's default). One XLA:CPU program uses about one core, so data parallelism over one
    device per core is faster. JAX_NUM_CPU_DEVICES in the environment wins; other backends ignore this.

    Returns a one-line note when the batch sizes leave cores unused (None otherwise)."""
    if not requested or "JAX_NUM_CPU_DEVICES" in os.environ:
        return None
    cores = os.cpu_count() or 1
    count = requested if requested > 0 else cpu_device_count(cores, batch_sizes)
    jax.config.update("jax_num_cpu_devices", count)
    if requested < 0 and count < cores:
        return (f"Using {count} of {cores} CPU cores as devices: the batch sizes {tuple(batch_sizes)} are not all "
                f"multiples of a larger device count (multiples of {cores} use every core).")
    return None


# Environment variables that JAX's cluster auto-detection understands (SLURM, Open MPI, TPU pods, GKE, K8s).
CLUSTER_HINTS = ("SLURM_JOB_ID", "OMPI_COMM_WORLD_SIZE", "TPU_WORKER_HOSTNAMES", "MEGASCALE_COORDINATOR_ADDRESS",
                 "JAX_COORDINATOR_ADDRESS")


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, cpu_collectives: str | None = None) -> bool:
    """Starts the distributed runtime if asked or if a cluster is detected; returns whether it started."""
    if cpu_collectives:
        jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    explicit = (coordinator_address, num_processes, process_id)
    if any(v is not None for v in explicit):
        if any(v is None for v in explicit):
            raise ValueError("--coordinator_address, --num_processes and --process_id go together; got "
                             f"{coordinator_address!r}, {num_processes!r}, {process_id!r}")
        jax.distributed.initialize(coordinator_address, num_processes, process_id)
    elif any(os.environ.get(k) for k in CLUSTER_HINTS) and int(os.environ.get("SLURM_NTASKS", "2")) > 1:
        jax.distributed.initialize()
    else:
        return False
    logging.info("Process %d of %d, %d local / %d global devices", jax.process_index(), jax.process_count(),
                 jax.local_device_count(), jax.device_count())
    return True
