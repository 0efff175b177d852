"""The README's main job, end to end: `python train.py` (the embedded default) learns the motion-defined classes."""

import os
import subprocess
import sys

import pytest

from vmp_jax.metric_writers import read_metrics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_default_config_trains_far_above_chance(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "JAX_NUM_CPU_DEVICES"}
    proc = subprocess.run([sys.executable, "train.py", "--workdir", str(tmp_path), "--config.progress_bar=False"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    evals = read_metrics(str(tmp_path), "eval")
    assert [r["step"] for r in evals] == [300, 600, 900]
    assert evals[-1]["top1"] > 0.9  # 4 classes: chance is 0.25
    assert evals[-1]["num_videos"] == 512
