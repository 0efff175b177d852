"""config.profile_steps (a jax.profiler trace of steps A..B in the workdir), config.compilation_cache_dir, and the
refusal of object-store workdirs."""

import glob
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from vmp_jax import cli
from vmp_jax.training import profiling, validation

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("text, want", [("", None), ("3,5", (3, 5)), ("4,4", (4, 4))])
def test_parse_steps(text, want):
    assert profiling.parse_steps(text) == want


@pytest.mark.parametrize("text", ["5,3", "0,2", "3", "a,b", "1,2,3"])
def test_bad_profile_steps_are_config_errors(text):
    from configs.common import base_config

    config = base_config()
    config.profile_steps = text
    with pytest.raises(cli.ConfigError, match=f"config.profile_steps='{text}'"):
        validation.validate(config, 1)


def test_trace_spans_exactly_steps_a_to_b_counting_from_the_resumed_step(monkeypatch, tmp_path):
    events = []
    monkeypatch.setattr(jax.profiler, "start_trace", lambda logdir: events.append(("start", logdir)))
    monkeypatch.setattr(jax.profiler, "stop_trace", lambda: events.append(("stop",)))
    step = profiling.traced(lambda s: (events.append(("step", s)), s + 1)[1], (3, 4), str(tmp_path), start_step=1)
    state = 1
    for _ in range(5):
        state = step(state)
    assert events == [
        ("step", 1),
        ("start", str(tmp_path)),
        ("step", 2),
        ("step", 3),
        ("stop",),
        ("step", 4),
        ("step", 5),
    ]
    assert profiling.traced(len, (1, 2), str(tmp_path), start_step=2) is len  # already past: nothing traced


def test_a_real_trace_is_written(tmp_path):
    f = jax.jit(lambda x: x * 2)
    step = profiling.traced(lambda x: f(x), (1, 1), str(tmp_path / "profile"), start_step=0)
    step(jnp.ones(4))
    assert glob.glob(str(tmp_path / "profile" / "plugins" / "profile" / "*" / "*.xplane.pb"))


def test_object_store_workdirs_are_refused_with_what_to_do():
    with pytest.raises(cli.UsageError, match="gs://b/run: object-store URLs.*gcsfuse"):
        cli.output_dir("gs://b/run", "workdir")


@pytest.mark.slow
def test_train_py_writes_the_trace_and_the_compilation_cache(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    env.update(JAX_NUM_CPU_DEVICES="1", JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    cmd = [
        sys.executable,
        "train.py",
        "--workdir",
        str(tmp_path / "run"),
        "--config.model.backbone=tiny",
        "--config.num_frames=2",
        "--config.batch_size=2",
        "--config.eval_batch_size=2",
        "--config.data.procedural.height=16",
        "--config.data.procedural.width=16",
        "--config.data.procedural.num_train=8",
        "--config.data.procedural.num_eval=2",
        "--config.progress_bar=False",
        "--config.num_train_steps=3",
        "--config.eval_every_steps=0",
        "--config.profile_steps=2,3",
        f"--config.compilation_cache_dir={tmp_path / 'cache'}",
    ]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert glob.glob(str(tmp_path / "run" / "profile" / "plugins" / "profile" / "*" / "*.xplane.pb"))
    assert os.listdir(tmp_path / "cache")


def test_a_step_that_raises_inside_the_window_closes_the_trace(monkeypatch, tmp_path):
    events = []
    monkeypatch.setattr(jax.profiler, "start_trace", lambda logdir: events.append("start"))
    monkeypatch.setattr(jax.profiler, "stop_trace", lambda: events.append("stop"))

    def interrupted(state):
        raise KeyboardInterrupt  # as a stop signal raises StopRequested while the loop waits for its batch

    with pytest.raises(KeyboardInterrupt):
        profiling.traced(interrupted, (1, 3), str(tmp_path), start_step=0)(None)
    assert events == ["start", "stop"]
