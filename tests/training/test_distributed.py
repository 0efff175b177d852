"""Starting the distributed runtime: JAX's own cluster detection (a multi-host TPU slice starts without flags), and
the GPUs a SLURM task drives (all local GPUs with one task per node, not only SLURM_LOCALID's)."""

import os
import subprocess
import sys

import jax
import pytest
from jax._src.clusters import ClusterEnv
from processes import free_port

from vmp_jax.training import distributed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def fake_cluster(name, processes):
    # Built with type(), not a class statement: ClusterEnv registers every subclass it sees defined.
    return type(
        name,
        (),
        {
            "opt_in_only_method": False,
            "is_env_present": classmethod(lambda cls: True),
            "get_process_count": classmethod(lambda cls: processes),
        },
    )


@pytest.fixture
def calls(monkeypatch):
    for key in distributed.CLUSTER_HINTS:
        monkeypatch.delenv(key, raising=False)
    made = []
    monkeypatch.setattr(jax.distributed, "initialize", lambda *args, **kwargs: made.append((args, kwargs)))
    return made


def test_a_multi_host_tpu_slice_starts_without_flags_or_cluster_variables(monkeypatch, calls):
    monkeypatch.setattr(ClusterEnv, "_cluster_types", [fake_cluster("GceTpuCluster", 4)])
    assert distributed.initialize()
    assert calls == [((), {"local_device_ids": None})]


def test_a_single_process_cluster_starts_nothing(monkeypatch, calls):
    monkeypatch.setattr(ClusterEnv, "_cluster_types", [fake_cluster("GceTpuCluster", 1)])
    assert not distributed.initialize()
    monkeypatch.setattr(ClusterEnv, "_cluster_types", [])
    assert not distributed.initialize()
    assert calls == []


def test_slurm_with_one_task_per_node_drives_every_local_gpu(monkeypatch, calls):
    monkeypatch.setattr(ClusterEnv, "_cluster_types", [fake_cluster("SlurmCluster", 2)])
    for key, value in dict(
        SLURM_NTASKS="2", SLURM_NNODES="2", SLURM_LOCALID="0", CUDA_VISIBLE_DEVICES="0,1,2,3", SLURM_NTASKS_PER_NODE="1"
    ).items():
        monkeypatch.setenv(key, value)
    assert distributed.initialize()
    assert calls == [((), {"local_device_ids": [0, 1, 2, 3]})]


@pytest.mark.parametrize(
    "env, want",
    [
        (dict(SLURM_NTASKS="4", SLURM_NNODES="4", SLURM_GPUS_ON_NODE="8"), list(range(8))),  # one task per node
        (dict(SLURM_TASKS_PER_NODE="2(x3)", SLURM_LOCALID="1", CUDA_VISIBLE_DEVICES="0,1,2,3,4,5,6,7"), [4, 5, 6, 7]),
        (dict(SLURM_NTASKS_PER_NODE="4", SLURM_LOCALID="3", CUDA_VISIBLE_DEVICES="0,1,2,3"), [3]),  # one GPU per task
        (dict(SLURM_NTASKS_PER_NODE="4", SLURM_LOCALID="3", CUDA_VISIBLE_DEVICES="3"), [0]),  # SLURM split the GPUs
        (dict(SLURM_NTASKS_PER_NODE="1", CUDA_VISIBLE_DEVICES=""), None),  # no GPUs: JAX's default
    ],
)
def test_slurm_local_device_ids(env, want):
    assert distributed.slurm_local_device_ids(env) == want


def test_two_slurm_tasks_on_127_0_0_1_start_from_jax_detection_alone():
    """Real processes: SLURM's variables only, no flags; JAX's SlurmCluster finds the coordinator and the ranks."""
    port = free_port()
    code = (
        "import jax; from vmp_jax.training import distributed; assert distributed.initialize(cpu_collectives='gloo'); "
        "print('processes', jax.process_count(), 'devices', jax.device_count())"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "OMPI_", "TPU_", "MEGASCALE_"))}
    procs = []
    for i in range(2):
        env = dict(
            base,
            PYTHONPATH=ROOT,
            JAX_NUM_CPU_DEVICES="2",
            JAX_COORDINATOR_PORT=str(port),
            SLURM_JOB_ID="7",
            SLURM_STEP_NODELIST="localhost",
            SLURM_NTASKS="2",
            SLURM_NNODES="1",
            SLURM_PROCID=str(i),
            SLURM_LOCALID=str(i),
            CUDA_VISIBLE_DEVICES="",
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", code],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out[-2000:]
        assert "processes 2 devices 4" in out
