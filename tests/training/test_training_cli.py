"""`python train.py` as a user runs it: exact resume after SIGKILL, clean stop on SIGTERM, 2 processes x 2 devices."""

import json
import os
import random
import signal
import time

import jax
import numpy as np
import pytest
from processes import finish, start_train, start_train_job

from vmp_jax.training import checkpointing
from vmp_jax.training.metric_writers import read_metrics

STEPS = 8

pytestmark = pytest.mark.slow


def final_state(workdir, step=STEPS):
    return checkpointing.Checkpoints(os.path.join(workdir, "checkpoints")).restore_state(step)


def assert_bitwise_equal(a, b):
    leaves_a, tree_a = jax.tree.flatten(a)
    leaves_b, tree_b = jax.tree.flatten(b)
    assert tree_a == tree_b
    for x, y in zip(leaves_a, leaves_b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def wait_for_checkpoint(workdir, proc, timeout=240):
    directory = os.path.join(workdir, "checkpoints")
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.isdir(directory) and any(name.isdigit() for name in os.listdir(directory)):
            return
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        time.sleep(0.2)
    raise TimeoutError(f"no checkpoint in {directory}")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("uninterrupted")
    finish(start_train(workdir, f"--config.num_train_steps={STEPS}"))
    return workdir


def test_sigkill_at_an_arbitrary_moment_then_rerun_is_bitwise_exact(uninterrupted, tmp_path):
    proc = start_train(tmp_path, f"--config.num_train_steps={STEPS}")
    wait_for_checkpoint(tmp_path, proc)
    time.sleep(random.Random(os.getpid()).uniform(0.0, 1.5))
    proc.kill()  # SIGKILL: no handler runs
    proc.wait()
    out = finish(start_train(tmp_path, f"--config.num_train_steps={STEPS}"))
    killed_at = checkpointing.Checkpoints(os.path.join(tmp_path, "checkpoints")).all_steps()
    assert STEPS in killed_at
    # Killed before the last step: the rerun resumes; killed after it (the run had finished): it says so.
    assert "Resumed from step" in out or f"already finished: step {STEPS} of {STEPS}" in out, out
    assert_bitwise_equal(final_state(uninterrupted), final_state(tmp_path))
    # The steps written after the checkpoint resumed from are not repeated: the same records, apart from timings.
    assert without_timings(read_metrics(str(tmp_path))) == without_timings(read_metrics(str(uninterrupted)))


def without_timings(records):
    return [{k: v for k, v in r.items() if k not in ("time", "clips_per_s", "data_wait_s", "step_s")} for r in records]


def test_sigterm_saves_and_exits_cleanly_then_resumes_exactly(uninterrupted, tmp_path):
    proc = start_train(tmp_path, f"--config.num_train_steps={STEPS}")
    wait_for_checkpoint(tmp_path, proc)
    proc.send_signal(signal.SIGTERM)
    out = finish(proc)
    assert "Stopped by signal 15 at step" in out
    stopped = int(out.split("Stopped by signal 15 at step ")[1].split(";")[0])
    assert checkpointing.Checkpoints(os.path.join(tmp_path, "checkpoints")).latest_step() == stopped
    if stopped < STEPS:
        assert "Resumed from step" in finish(start_train(tmp_path, f"--config.num_train_steps={STEPS}"))
    assert_bitwise_equal(final_state(uninterrupted), final_state(tmp_path))


def test_two_processes_of_two_devices_match_one_process_of_four(tmp_path):
    single = tmp_path / "single"
    finish(start_train(single, "--config.num_train_steps=4", devices=4))
    multi = tmp_path / "multi"
    for proc in start_train_job(multi, "--config.num_train_steps=4", devices=2):
        finish(proc)
    want = read_metrics(str(single), "train")
    got = read_metrics(str(multi), "train")
    assert [r["step"] for r in got] == [r["step"] for r in want] == [1, 2, 3, 4]
    np.testing.assert_allclose([r["loss"] for r in got], [r["loss"] for r in want], rtol=1e-4)
    assert os.path.exists(multi / "checkpoints" / "4" / "data" / "process_1-of-2.json")
    # Process 0 writes the checksums once both processes' files are written: they cover process 1's files too.
    with open(multi / "checkpoints" / "4" / "checksums.json") as f:
        assert "data/process_1-of-2.json" in json.load(f)["files"]
    assert checkpointing.checksum_problems(str(multi / "checkpoints" / "4")) == []


def test_sigterm_to_one_of_two_processes_stops_both_at_one_step_then_resumes_exactly(tmp_path):
    # Checkpoints every 4 steps and no log step before the last: a stop between them comes from JAX's preemption
    # sync point (loop._should_stop), one at step 8, 12 or 16 from either agreement.
    flags = ["--config.num_train_steps=20", "--config.log_every_steps=100", "--config.checkpoint_every_steps=4"]
    uninterrupted, workdir = tmp_path / "uninterrupted", tmp_path / "stopped"
    reference = start_train_job(uninterrupted, *flags)  # alongside the stopped job: on several cores, no longer
    procs = start_train_job(workdir, *flags)
    try:
        wait_for_checkpoint(workdir, procs[0])  # step 4's: a few steps trained
        procs[1].send_signal(signal.SIGTERM)
        outs = [finish(proc, timeout=150) for proc in procs]  # both exit cleanly (status 0)
        said = "Stopped by a signal to process 1 at step "
        assert said in outs[0], outs[0][-3000:]
        stopped = int(outs[0].split(said)[1].split(";")[0])
        assert f"Stopped by signal {int(signal.SIGTERM)} at step {stopped}\n" in outs[1], outs[1][-3000:]  # its log
        assert 4 < stopped < 20
        assert checkpointing.Checkpoints(os.path.join(workdir, "checkpoints")).latest_step() == stopped
        procs += start_train_job(workdir, *flags)
        outs = [finish(proc) for proc in procs[2:]]
        assert f"Resumed from step {stopped}" in outs[0] and "Finished 20 steps" in outs[0], outs[0][-3000:]
        for proc in reference:
            finish(proc)
    finally:
        for proc in reference + procs:
            proc.kill()
    assert_bitwise_equal(final_state(uninterrupted, 20), final_state(workdir, 20))
