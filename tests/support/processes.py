"""Processes the tests start: `python train.py` runs of the tiny model, and jobs of several processes that meet on
127.0.0.1 (gloo collectives)."""

import os
import socket
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The tiny run (support/tiny_run.py) as train.py flags, logging every step and checkpointing every other one.
TINY_FLAGS = [
    "--config.model.backbone=tiny",
    "--config.num_frames=4",
    "--config.batch_size=8",
    "--config.eval_batch_size=8",
    "--config.data.procedural.height=32",
    "--config.data.procedural.width=32",
    "--config.data.procedural.num_train=64",
    "--config.data.procedural.num_eval=16",
    "--config.progress_bar=False",
    "--config.log_every_steps=1",
    "--config.checkpoint_every_steps=2",
    "--config.eval_every_steps=0",
    "--config.schedule.name=constant",
    "--config.schedule.base_lr=0.05",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def job_flags(num_processes: int, port: int | None = None) -> list[list[str]]:
    """For each process of a job on 127.0.0.1, the flags that make it one (train.py's and the workers')."""
    port = free_port() if port is None else port
    return [
        [
            f"--coordinator_address=127.0.0.1:{port}",
            f"--num_processes={num_processes}",
            f"--process_id={i}",
            "--cpu_collectives=gloo",
        ]
        for i in range(num_processes)
    ]


def start_train(workdir, *flags, devices=1) -> subprocess.Popen:
    """`python train.py` of the tiny run into `workdir` on `devices` CPU devices, sharing the tests' compile cache."""
    env = dict(
        os.environ,
        JAX_NUM_CPU_DEVICES=str(devices),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_COMPILATION_CACHE_DIR=os.path.join(tempfile.gettempdir(), "vmp_jax_test_jax_cache"),
    )
    cmd = [sys.executable, "train.py", "--workdir", str(workdir), *TINY_FLAGS, *flags]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def start_train_job(workdir, *flags, num_processes=2, devices=1) -> list[subprocess.Popen]:
    """The processes of one train.py job (`devices` CPU devices each) on 127.0.0.1."""
    return [start_train(workdir, *flags, *job, devices=devices) for job in job_flags(num_processes)]


def finish(proc: subprocess.Popen, timeout=300) -> str:
    """Its output, once it exited with status 0."""
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out
