"""data.num_workers=-1: grain workers from the CPU cores this process may use (host_cores.py)."""

import os

import pytest

from vmp_jax.data import host_cores


def test_local_processes_from_the_launchers_environment():
    assert host_cores.local_processes({}) == 1
    assert host_cores.local_processes({"SLURM_TASKS_PER_NODE": "4(x2),3"}) == 4
    assert host_cores.local_processes({"SLURM_NTASKS_PER_NODE": "8", "SLURM_TASKS_PER_NODE": "2"}) == 8
    assert host_cores.local_processes({"LOCAL_WORLD_SIZE": "2", "OMPI_COMM_WORLD_LOCAL_SIZE": "4"}) == 2
    assert host_cores.local_processes({"OMPI_COMM_WORLD_LOCAL_SIZE": "junk"}) == 1


def test_cores_are_the_affinity_or_a_share_of_the_machine(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    assert host_cores.available_cores({}) == 16
    assert host_cores.available_cores({"SLURM_NTASKS_PER_NODE": "8"}) == 2  # 8 GPUs' processes share 16 cores
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3, 4, 5, 6})  # bound by taskset / SLURM: its share
    assert host_cores.available_cores({"SLURM_NTASKS_PER_NODE": "8"}) == 4
    assert host_cores.auto_num_workers() == 3


@pytest.mark.parametrize("cores, workers", [(1, 0), (2, 0), (3, 2), (16, 15)])
def test_auto_workers_leave_a_core_to_the_training_process(cores, workers):
    assert host_cores.auto_num_workers(cores) == workers


def test_resolve():
    assert host_cores.resolve_num_workers(5) == 5
    assert host_cores.resolve_num_workers(-1) == host_cores.auto_num_workers()
    with pytest.raises(ValueError, match="data.eval_num_workers=-3"):
        host_cores.resolve_num_workers(-3, "data.eval_num_workers")
