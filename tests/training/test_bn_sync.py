"""config.model.bn_sync: BatchNorm statistics over every device, each process's devices, or each device alone,
checked with 2 processes x 2 CPU devices on 127.0.0.1 (gloo) against statistics computed without any mapped axis."""

import os
import subprocess
import sys

import numpy as np
import pytest
from processes import free_port

from vmp_jax import cli
from vmp_jax.models import factory
from vmp_jax.training import validation

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER = os.path.join(ROOT, "tests", "support", "bn_sync_worker.py")


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bn_sync")
    env = dict(os.environ, JAX_NUM_CPU_DEVICES="2", PYTHONPATH=ROOT, JAX_DISABLE_MOST_OPTIMIZATIONS="1")
    port = free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, WORKER, str(tmp / f"{i}.npz"), f"127.0.0.1:{port}", "2", str(i)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0, out[-3000:]
    return [dict(np.load(tmp / f"{i}.npz")) for i in range(2)]


def test_global_statistics_are_the_whole_batchs_on_every_device(two_processes):
    for r in two_processes:
        for device_mean in r["global"]:
            np.testing.assert_allclose(device_mean, r["ref_all"], rtol=1e-5, atol=1e-7)


def test_host_statistics_are_each_processs_own_and_differ_from_global(two_processes):
    for r in two_processes:
        for device_mean in r["host"]:
            np.testing.assert_allclose(device_mean, r["ref_process"], rtol=1e-5, atol=1e-7)
        assert np.abs(r["ref_process"] - r["ref_all"]).max() > 1e-4
    assert np.abs(two_processes[0]["host"][0] - two_processes[1]["host"][0]).max() > 1e-4


def test_none_gives_each_device_its_own_clips_statistics(two_processes):
    for r in two_processes:
        np.testing.assert_allclose(r["none"], r["ref_devices"], rtol=1e-5, atol=1e-7)
        assert np.abs(r["none"][0] - r["none"][1]).max() > 1e-4


def test_bn_sync_axis_and_the_config_check():
    axes = ("hosts", "data")
    assert factory.bn_sync_axis("global", axes) == axes
    assert factory.bn_sync_axis("host", axes) == "data"
    assert factory.bn_sync_axis("none", axes) is None
    from configs.common import base_config

    config = base_config()
    config.model.bn_sync = "per-host"
    with pytest.raises(cli.ConfigError, match="model.bn_sync='per-host'"):
        validation.validate(config, 1)
