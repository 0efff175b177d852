"""Starting JAX's runtime: CPU device count, and the multi-process runtime (from flags, or from the cluster JAX
detects: SLURM, Open MPI, Cloud TPU VMs, GKE, K8s), with every local GPU of a SLURM task in use."""

from __future__ import annotations

import glob
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
        return (
            f"Using {count} of {cores} CPU cores as devices: the batch sizes {tuple(batch_sizes)} are not all "
            f"multiples of a larger device count (multiples of {cores} use every core)."
        )
    return None


# Environment variables of the clusters JAX detects (SLURM, Open MPI, TPU pods, GKE, K8s); used only where JAX's own
# detection cannot be asked (`detect_cluster`), and JAX_COORDINATOR_ADDRESS, which jax.distributed reads itself.
CLUSTER_HINTS = (
    "SLURM_JOB_ID",
    "OMPI_COMM_WORLD_SIZE",
    "TPU_WORKER_HOSTNAMES",
    "MEGASCALE_COORDINATOR_ADDRESS",
    "JAX_COORDINATOR_ADDRESS",
)


def detect_cluster():
    """JAX's cluster environment this process runs in (a `ClusterEnv` class: SLURM, Open MPI, a Cloud TPU VM found
    through its metadata server, GKE, K8s), None outside one; `True` when only an environment variable of
    CLUSTER_HINTS says so (a JAX without the detection this uses)."""
    try:
        from jax._src.clusters import ClusterEnv  # JAX's own detection, as jax.distributed.initialize() uses it

        candidates = [env for env in ClusterEnv._cluster_types if not env.opt_in_only_method]
    except (ImportError, AttributeError):
        return True if any(os.environ.get(k) for k in CLUSTER_HINTS) else None
    for env in candidates:
        try:
            if env.is_env_present():
                return env
        except Exception as e:  # noqa: BLE001  (a detector that fails, e.g. an unreachable metadata server, is absent)
            logging.info("cluster detection %s failed: %s", env.__name__, e)
    return True if os.environ.get("JAX_COORDINATOR_ADDRESS") else None


def _count_gpus(environ) -> int:
    """GPUs this task may use, before any backend starts: CUDA_VISIBLE_DEVICES, else SLURM_GPUS_ON_NODE, else the
    /dev/nvidiaN device files."""
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([v for v in visible.split(",") if v.strip() and v.strip() != "-1"])
    if environ.get("SLURM_GPUS_ON_NODE", "").isdigit():
        return int(environ["SLURM_GPUS_ON_NODE"])
    return len(glob.glob("/dev/nvidia[0-9]*"))


def _tasks_per_node(environ) -> int | None:
    for key in ("SLURM_NTASKS_PER_NODE", "SLURM_TASKS_PER_NODE", "SLURM_STEP_TASKS_PER_NODE"):
        value = environ.get(key, "").split("(")[0].split(",")[0]  # '2(x3)' -> 2 (the first node's count)
        if value.isdigit():
            return int(value)
    tasks, nodes = environ.get("SLURM_NTASKS", ""), environ.get("SLURM_NNODES", "")
    return int(tasks) // int(nodes) if tasks.isdigit() and nodes.isdigit() and int(nodes) else None


def slurm_local_device_ids(environ=os.environ) -> list[int] | None:
    """The GPUs a SLURM task drives. JAX alone gives each task only GPU `SLURM_LOCALID`; with one task per node that
    leaves all but one GPU idle. One task per node: all; n tasks sharing the node's G GPUs: a block of G // n; GPUs
    already split by SLURM (fewer visible than tasks): all visible. None where there are no GPUs (JAX's default)."""
    gpus = _count_gpus(environ)
    tasks = _tasks_per_node(environ)
    if gpus == 0 or tasks is None:
        return None
    if tasks == 1 or gpus < tasks or gpus % tasks:
        return list(range(gpus))
    per_task = gpus // tasks
    local = int(environ.get("SLURM_LOCALID", "0"))
    return list(range(local * per_task, (local + 1) * per_task))


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    cpu_collectives: str | None = None,
) -> bool:
    """Starts the distributed runtime if asked or if a cluster of more than one process is detected (`detect_cluster`:
    a multi-host TPU slice needs no flags); returns whether it started."""
    if cpu_collectives:
        jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    explicit = (coordinator_address, num_processes, process_id)
    if any(v is not None for v in explicit):
        if any(v is None for v in explicit):
            raise ValueError(
                "--coordinator_address, --num_processes and --process_id go together; got "
                f"{coordinator_address!r}, {num_processes!r}, {process_id!r}"
            )
        jax.distributed.initialize(coordinator_address, num_processes, process_id)
    else:
        cluster = detect_cluster()
        if cluster is None:
            return False
        if cluster is not True and cluster.get_process_count() < 2:
            return False  # a single-host TPU VM, a one-task SLURM job: nothing to coordinate
        local_device_ids = slurm_local_device_ids() if getattr(cluster, "__name__", "") == "SlurmCluster" else None
        jax.distributed.initialize(local_device_ids=local_device_ids)
    logging.info(
        "Process %d of %d, %d local / %d global devices",
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
    )
    return True
