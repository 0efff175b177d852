"""`python -m vmp_jax.aot`: TPU topology names, the memory and roofline arithmetic, the compiled program's summary,
and, where libtpu is installed (VMP_TPU_PYTHON: an interpreter with requirements-tpu.txt, which .ci/run makes),
the tiny model compiled for a one-host and a two-host v5e slice, a batch too large for the chip, and a CPU run
that libtpu leaves quiet."""

import json
import os
import re
import subprocess
import types

import pytest

from vmp_jax import aot, cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TPU_PYTHON = os.environ.get("VMP_TPU_PYTHON", "")
TINY = [
    "--config.model.backbone=tiny",
    "--config.num_frames=3",
    "--config.batch_size=8",
    "--config.eval_batch_size=8",
    "--config.data.procedural.height=32",
    "--config.data.procedural.width=32",
]


@pytest.mark.parametrize(
    "name, want",
    [
        ("v5e-8", ("v5e", "v5e:2x4")),
        ("v5e-256", ("v5e", "v5e:16x16")),
        ("v6e-256", ("v6e", "v6e:16x16")),
        ("v4-8", ("v4", "v4:2x2x1")),  # v4 and v5p accelerator types count TensorCores, two per chip
        ("v5p-128", ("v5p", "v5p:4x4x4")),
        ("v5p-16", ("v5p", "v5p:2x2x2")),
        ("v5e:4x4", ("v5e", "v5e:4x4")),
    ],
)
def test_accelerator_types_name_their_topology(name, want):
    assert aot.topology_name(name) == want


@pytest.mark.parametrize("name", ["v5e", "v9-8", "v5e-12", "v5p-x", "tpu:2x2"])
def test_bad_topology_names_are_one_line_usage_errors(name):
    with pytest.raises(cli.UsageError, match="--topology"):
        aot.topology_name(name)


def test_memory_total_counts_aliased_outputs_once():
    fake = types.SimpleNamespace(
        memory_analysis=lambda: types.SimpleNamespace(
            argument_size_in_bytes=1000,
            output_size_in_bytes=900,
            alias_size_in_bytes=800,  # the donated state written in place
            temp_size_in_bytes=300,
            generated_code_size_in_bytes=50,
        )
    )
    memory = aot.Memory.of(fake)
    assert memory.total == 1000 + 900 - 800 + 300 + 50


def test_roofline_is_the_slower_of_compute_and_memory():
    chip = aot.CHIPS["v5e"]
    memory = aot.Memory(0, 0, 0, 0, 0)
    compute_bound = aot.Report("t", 4, 1, 8, memory, flops=197e12, bytes=1e9, chip=chip)
    assert compute_bound.roofline_s == pytest.approx(1.0) and compute_bound.mfu == pytest.approx(1.0)
    assert compute_bound.clips_per_s_per_device == pytest.approx(8.0)
    memory_bound = aot.Report("t", 4, 1, 8, memory, flops=1e12, bytes=819e9 * 2, chip=chip)
    assert memory_bound.roofline_s == pytest.approx(2.0) and memory_bound.mfu == pytest.approx(1e12 / (2 * 197e12))


HLO = """HloModule jit_step, entry_computation_layout={(f32[8,128]{1,0})->f32[8,128]{1,0}}

%fused_computation (param_0: f32[8,128]) -> f32[8,128] {
  %param_0 = f32[8,128]{1,0} parameter(0)
  ROOT %add.9 = f32[8,128]{1,0} add(f32[8,128]{1,0} %param_0, f32[8,128]{1,0} %param_0)
}

ENTRY %main (p: f32[8,128]) -> f32[8,128] {
  %p = f32[8,128]{1,0} parameter(0)
  %fusion = f32[8,128]{1,0} fusion(f32[8,128]{1,0} %p), calls=%fused_computation, metadata={op_name="jit(s)/add"}
  %all-reduce-start = f32[8,128]{1,0} all-reduce-start(f32[8,128]{1,0} %fusion), replica_groups={}, to_apply=%sum
  %all-reduce-done = f32[8,128]{1,0} all-reduce-done(f32[8,128]{1,0} %all-reduce-start)
  %big = bf16[1024,1024]{1,0} convolution(f32[8,128]{1,0} %all-reduce-done, f32[8,128]{1,0} %p), \
metadata={op_name="jit(s)/shard_map/backbone/conv"}
  %send = f32[8,128]{1,0} send(f32[8,128]{1,0} %fusion), channel_id=1
  ROOT %send.1 = f32[8,128]{1,0} send(f32[8,128]{1,0} %fusion), channel_id=2, is_host_transfer=true
}
"""


def test_hlo_summary_counts_collectives_and_host_transfers_and_ranks_ops_by_bytes():
    summary = aot.hlo_summary(HLO, top=2)
    # -start and -done are one collective; a send to the host is told from one to another device (across slices)
    assert summary["counts"] == {"all-reduce": 1, "send": 1, "host send": 1}
    (first_bytes, first_op, first_name), second = summary["top"]
    assert (first_op, first_name) == ("convolution", "backbone/conv")
    assert first_bytes == 1024 * 1024 * 2 + 2 * 8 * 128 * 4  # bf16 result + two f32 operands
    # Next: an f32[8,128] from one operand of the same size (the fusion; the add inside it is not counted:
    # a fused computation's values stay on chip), as are the all-reduce and the send.
    assert second[0] == 2 * 8 * 128 * 4
    assert summary["kinds"][0] == ("conv", first_bytes)  # bytes by JAX primitive: the conv leads


needs_libtpu = pytest.mark.skipif(
    not TPU_PYTHON and not os.environ.get("VMP_REQUIRE_TPU_COMPILE"),
    reason="no VMP_TPU_PYTHON (an interpreter with requirements-tpu.txt installed)",
)

PROBE = """
import json, os, sys
os.environ.setdefault("TPU_SKIP_MDS_QUERY", "1")
from vmp_jax import aot, cli
cli.skip_absent_tpu()
from configs import default
config = default.get_config()
for key, value in json.loads(sys.argv[1]).items():
    target = config
    *path, last = key.split(".")
    for part in path:
        target = target[part]
    target[last] = value
out = {}
for topology, slices in (("v5e:2x2", 1), ("v5e:2x4", 1), ("v5e:2x2", 2)):
    devices = aot.topology_devices(topology, slices)
    mesh = aot.make_mesh(devices)
    report, compiled = aot.report_step(config, topology, "v5e", devices, mesh)
    m = compiled.memory_analysis()
    out[f"{topology}x{slices}"] = dict(
        hosts=report.hosts, devices=report.devices, total=report.memory.total, fits=report.fits,
        flops=report.flops, bytes=report.bytes,
        parts=[m.argument_size_in_bytes, m.output_size_in_bytes, m.alias_size_in_bytes, m.temp_size_in_bytes,
               m.generated_code_size_in_bytes],
        counts=aot.hlo_summary(compiled.as_text())["counts"],
        mesh=[[d.process_index for d in row] for row in mesh.devices],
    )
print("RESULT " + json.dumps(out))
"""


def _tpu_python(args, timeout=900):
    if not TPU_PYTHON:
        pytest.fail("VMP_REQUIRE_TPU_COMPILE is set but VMP_TPU_PYTHON is not")
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu", ALLOW_MULTIPLE_LIBTPU_LOAD="1")
    return subprocess.run([TPU_PYTHON, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@needs_libtpu
def test_tiny_model_compiles_for_one_and_two_host_v5e_slices_and_two_slices():
    overrides = {"model.backbone": "tiny", "num_frames": 3, "batch_size": 8, "eval_batch_size": 8}
    proc = _tpu_python(["-c", PROBE, json.dumps(overrides)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT ", 1)[1])
    one, two, sliced = result["v5e:2x2x1"], result["v5e:2x4x1"], result["v5e:2x2x2"]
    assert (one["devices"], one["hosts"], two["devices"], two["hosts"]) == (4, 1, 8, 2)
    assert two["mesh"] == [[0, 0, 0, 0], [1, 1, 1, 1]]  # the trainer's mesh: one row of devices per host
    assert (sliced["devices"], sliced["hosts"]) == (8, 2)  # two slices of one host each
    # Between slices the gradients go through the hosts' network (DCN): host sends and receives, and only there.
    assert sliced["counts"].get("host send", 0) > 0 and sliced["counts"].get("host recv", 0) > 0
    for r in (one, two):
        assert not set(aot.HOST_TRANSFERS) & set(r["counts"])  # within a slice nothing leaves the devices
    for r in (one, two, sliced):
        args, outputs, aliased, temps, code = r["parts"]
        assert r["total"] == args + outputs - aliased + temps + code and r["fits"]
        assert aliased > 0  # the state is donated: its update is written in place
        assert r["flops"] > 0 and r["bytes"] > 0
        assert r["counts"].get("all-reduce", 0) > 0  # gradients and BN statistics are averaged over devices


@needs_libtpu
def test_a_batch_too_large_for_the_chip_gets_a_one_line_verdict_with_the_numbers():
    too_big = ["--config.batch_size=4096", "--config.eval_batch_size=4096", "--config.data.procedural.height=512"]
    args = ["--config", "configs/default.py", *TINY, *too_big, "--config.data.procedural.width=512", "--noeval"]
    proc = _tpu_python(["-m", "vmp_jax.aot", *args, "--topology", "v5e:2x2"])
    assert proc.returncode == 1, proc.stderr[-3000:]
    verdict = [line for line in proc.stdout.splitlines() if "verdict: does not fit" in line]
    assert len(verdict) == 1 and "--batch_search" in verdict[0], proc.stdout
    # The figures: the compiled program's total against the chip's HBM, or XLA's own when it refuses to compile.
    figures = r"does not fit \(([\d.]+ GiB > |[\d.]+[KMGT]?B needed, )[\d.]+[KMGT]?i?B (of HBM )?per device\)"
    assert re.search(figures, verdict[0]), verdict[0]
    assert "Traceback" not in proc.stderr


@needs_libtpu
def test_libtpu_leaves_a_cpu_training_run_quiet(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("JAX_PLATFORMS", None)
    proc = subprocess.run(
        [TPU_PYTHON, "train.py", "--workdir", str(tmp_path), *TINY, "--config.num_train_steps=1",
         "--config.progress_bar=False", "--config.data.procedural.num_train=16", "--config.data.procedural.num_eval=8"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "TPU" not in proc.stderr and "libtpu" not in proc.stderr, proc.stderr[-3000:]
