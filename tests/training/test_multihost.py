"""Simulated hosts: several CPU processes on 127.0.0.1 (gloo collectives, `jax_num_cpu_devices` devices each)."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from processes import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER = os.path.join(ROOT, "tests", "support", "multihost_worker.py")

pytestmark = pytest.mark.slow


def start_workers(*args, num_processes=1, devices=1):
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
    return procs


def run_workers(*args, num_processes=1, devices=1, timeout=120):
    procs = start_workers(*args, num_processes=num_processes, devices=devices)
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


def test_sigterm_to_one_process_stops_both_at_the_same_step_between_log_and_checkpoint_steps():
    # The processes step together (a collective per step), with no log, eval or checkpoint step before step 300:
    # only JAX's preemption sync point, told of the signal by the trainer's own SIGTERM handler, can stop them early.
    procs = start_workers("stop", "-", num_processes=2)
    try:
        lines = []
        for line in procs[1].stdout:  # process 1 gets the signal once it has taken 5 steps
            lines.append(line)
            if line.strip() == "step 5":
                break
        else:
            raise AssertionError("".join(lines)[-3000:])
        procs[1].send_signal(signal.SIGTERM)
        outs = [p.communicate(timeout=60)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    outs[1] = "".join(lines) + outs[1]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-3000:]
    results = [json.loads(out.split("RESULT ")[1].splitlines()[0]) for out in outs]
    stopped = results[0]["final"]
    assert 5 < stopped < 100, outs[0][-3000:]  # usually 6 or 7; step 300 (the last) without the sync point
    assert [r["final"] for r in results] == [stopped, stopped] and [r["saved"] for r in results] == [[stopped]] * 2
    assert results[0]["messages"] == [
        f"Stopped by a signal to process 1 at step {stopped}; checkpoint saved. Rerun the same command to resume."
    ]
    assert results[1]["messages"][0].startswith(f"Stopped by signal {int(signal.SIGTERM)} at step {stopped};")
