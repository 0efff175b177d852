"""Simulated hosts: several CPU processes on 127.0.0.1 (gloo collectives, `jax_num_cpu_devices` devices each)."""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "multihost_worker.py")

pytestmark = pytest.mark.slow


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_workers(*args, num_processes=1, devices=1, timeout=120):
    port = free_port()
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                WORKER,
                args[0],
                str(args[1]),
                str(i),
                str(num_processes),
                str(port),
                str(devices),
                *map(str, args[2:]),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(num_processes)
    ]
    outs = [p.communicate(timeout=timeout)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-3000:]
    return outs


def test_eval_with_interleaved_process_devices_scores_each_video_as_one_process(tmp_path):
    run_workers("eval", tmp_path / "one.npz", num_processes=1, devices=4)
    run_workers("eval", tmp_path / "two.npz", "interleaved", num_processes=2, devices=2)
    one, two = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    np.testing.assert_array_equal(two["ids"], one["ids"])
    np.testing.assert_array_equal(two["labels"], one["labels"])
    assert len(one["ids"]) == 24
    np.testing.assert_allclose(two["probs"], one["probs"], rtol=1e-4, atol=1e-6)
