"""benchmarks/accelerator_check.sh --quick runs end to end on the CPU and prints its whole table, so it does not rot
before someone runs it on a GPU."""

import datetime
import os
import subprocess

import jax
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS = (
    [f"train step, {feed}: {recipe}" for recipe in ("default", "x3d_s") for feed in ("batch on device", "real loop")]
    + [f"depthwise conv {impl}, {what}" for impl in ("lax", "shifted") for what in ("forward", "forward+backward")]
    + ["elementwise floor (x*2+1)", "VMP layer, forward", "VMP layer, forward+backward"]
    + ["input per core: h264 602x256 file", "input per core: ArrayRecord JPEG at 228"]
)


@pytest.mark.slow
def test_quick_check_prints_every_row_with_consistent_figures():
    env = dict(os.environ, JAX_NUM_CPU_DEVICES="1", JAX_DISABLE_MOST_OPTIMIZATIONS="1")
    out = subprocess.run(
        [os.path.join(ROOT, "benchmarks", "accelerator_check.sh"), "--quick", "--runs", "5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    lines = out.stdout.splitlines()
    title = next(line for line in lines if line.startswith("# accelerator check"))
    assert jax.devices()[0].device_kind in title and f"jax {jax.__version__}" in title
    assert f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d}" in title
    table = [[c.strip() for c in line.split("|")] for line in lines if "|" in line and not line.startswith("-")]
    assert table[0] == ["workload", "dtype", "shape", "median s", "throughput", "peak device memory"]
    names = [(row[0], row[1]) for row in table[1:]]
    for name in ROWS:
        dtypes = (
            ("float32", "bfloat16") if name.startswith("train") else ("uint8",) if "input" in name else ("float32",)
        )
        assert all((name, d) in names for d in dtypes), name
    for workload, _dtype, shape, seconds, throughput, _memory in table[1:]:
        assert float(seconds) > 0
        if workload.startswith("train"):  # clips/s is the batch over the median step time
            batch = int(shape.split("x")[0])
            assert float(throughput.split()[0]) == pytest.approx(batch / float(seconds), rel=0.01, abs=0.1)
    # The compile-only figures of each train step (no roofline row: a CPU has no peak figures in vmp_jax.aot).
    roofline = [line for line in lines if line.startswith("# roofline: ")]
    assert len(roofline) == sum(1 for row in table[1:] if row[0].startswith("train step, batch on device")), lines
    assert all(float(line.split(": ")[2].split(" GFLOP")[0]) > 0 for line in roofline), roofline
    # The cores per accelerator: the x3d_s bf16 train rate over each per-core input rate.
    rate = {row[0]: (row[1], float(row[4].split()[0])) for row in table[1:] if row[1] in ("bfloat16", "uint8")}
    train = rate["train step, batch on device: x3d_s"][1]
    for source in ("h264 602x256 file", "ArrayRecord JPEG at 228"):
        line = next(line for line in lines if line.startswith("# cores per accelerator") and source in line)
        assert float(line.rsplit(": ", 1)[1]) == pytest.approx(train / rate[f"input per core: {source}"][1], rel=0.05)
