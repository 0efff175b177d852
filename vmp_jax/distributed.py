"""Starting JAX's multi-process runtime: explicitly from flags, or automatically on a detected cluster."""

from __future__ import annotations

import os

import jax
from absl import logging

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
