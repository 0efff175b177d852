"""Compiles a config's real train and eval steps for a TPU slice on this machine, no TPU needed, and says whether
they fit and how fast they could run.

    python -m vmp_jax.aot --config configs/x3d_finegym.py:s,gym99 --topology v5e-8 [--topology v5p-8 ...]
    python -m vmp_jax.aot --config configs/timesformer_mpii_cooking2.py --config.batch_size=512 \
      --config.grad_accum_steps=1 --topology v6e-256 --num_slices 2   # 512 devices: a batch they divide
    python -m vmp_jax.aot --config ... --topology v5e-8 --batch_search      # the largest per-chip batch that fits

Needs libtpu (`pip install -r requirements-tpu.txt`; about 700 MB, not part of the main job's install): XLA then
compiles for a TPU topology without TPU hardware, the way MaxText's train_compile.py catches an out-of-memory
before a run. The mesh is the trainer's (`training.mesh.make_mesh` over the topology's devices, process indices
included) and the step is the trainer's (`training.steps.make_train_step`: shard_map, gradient accumulation,
bn_sync, remat, dtype and donation of the config), lowered with the recipe's global batch.

Per device it prints: HBM capacity, argument / output / temporary / generated-code bytes, the total and whether it
fits; FLOPs and HBM bytes of one step; the roofline step time max(FLOPs / peak, bytes / bandwidth), clips/s per
device and per slice, and the roofline MFU; the host CPU cores the input pipeline then needs; the collectives and
host transfers of the compiled step; and the ops that move the most HBM bytes. Figures come from XLA's
`memory_analysis()` and `cost_analysis()` of the compiled TPU program: the memory figures are the compiler's
buffer assignment (exact for this program); the cost figures count a loop body once (the per-micro-batch `scan` of
gradient accumulation is therefore compiled again as one micro-step and multiplied by the steps, which counts the
optimiser update k times: an overestimate of a few percent), and estimate bytes per op from its operands and
result (fusions that stay in VMEM are counted as HBM traffic). A roofline is a lower bound on the step time.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections
from absl import flags, logging
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from ml_collections import config_flags

from vmp_jax import cli
from vmp_jax.data import builders as data_builders
from vmp_jax.models import factory
from vmp_jax.training import run, steps, validation
from vmp_jax.training.mesh import AXIS, make_mesh

GIB = 2**30


@dataclasses.dataclass(frozen=True)
class Chip:
    """One JAX device of a TPU generation as its topology description exposes it."""

    hbm_bytes: float
    peak_bf16_flops: float  # per second
    hbm_bytes_per_s: float
    dims: int  # 2: a 2-D torus (v5e, v6e), 3: a 3-D one (v4, v5p)
    devices_per_chip: int  # devices the topology description gives a chip (v4: its 2 TensorCores)


# Cloud TPU's system architecture pages (docs.cloud.google.com/tpu/docs/v4, v5e, v5p, v6e), per chip: v4 275 TFLOP/s
# bf16, 32 GiB HBM at 1,200 GB/s; v5e 197 TFLOP/s, 16 GB at 819 GB/s; v5p 459 TFLOP/s, 95 GB at 2,765 GB/s;
# v6e 918 TFLOP/s, 32 GB at 1,638 GB/s. libtpu's v4 topology has one device per TensorCore (no megacore): half a chip.
CHIPS = {
    "v4": Chip(16 * GIB, 137.5e12, 600e9, 3, 2),
    "v5e": Chip(16e9, 197e12, 819e9, 2, 1),
    "v5p": Chip(95e9, 459e12, 2765e9, 3, 1),
    "v6e": Chip(32e9, 918e12, 1638e9, 2, 1),
}
# The accelerators `benchmarks/accelerator_check.py` may run on, by JAX device_kind (NVIDIA's data sheets, SXM, dense
# bf16 tensor-core FLOP/s): H200 141 GB HBM3e at 4.8 TB/s, H100 80 GB HBM3 at 3.35 TB/s, 989 TFLOP/s both; A100
# 80 GB at 2.04 TB/s, 312 TFLOP/s. Their predictions use the program compiled on the device itself.
DEVICE_KINDS = {
    "H200": Chip(141e9, 989e12, 4.8e12, 0, 1),
    "H100": Chip(80e9, 989e12, 3.35e12, 0, 1),
    "A100": Chip(80e9, 312e12, 2.04e12, 0, 1),
    "TPU v4": CHIPS["v4"],
    "TPU v5 lite": CHIPS["v5e"],
    "TPU v5": CHIPS["v5p"],
    "TPU v6 lite": CHIPS["v6e"],
}


def chip_of(device_kind: str) -> Chip | None:
    """The spec of a JAX device kind ('NVIDIA H200', 'TPU v5 lite', ...), None for one not in DEVICE_KINDS."""
    for kind in sorted(DEVICE_KINDS, key=len, reverse=True):  # 'TPU v5 lite' before 'TPU v5'
        if kind in device_kind:
            return DEVICE_KINDS[kind]
    return None


# Training clips/s one host CPU core delivers for X3D-S's clip (13+1 frames, 160^2 crops; benchmarks/RESULTS.md,
# "Input pipeline", 2-core AMD EPYC): ArrayRecord JPEG at the training short side, and h264 files decoded. Other
# clips are scaled by the pixels read (frames x crop^2), which decoding and resizing are proportional to.
CLIPS_PER_CORE = {"arrayrecord_jpeg": 52.0, "h264": 17.9}
REFERENCE_CLIP_PIXELS = 14 * 160 * 160


def topology_name(name: str) -> tuple[str, str]:
    """'v5e-256' (an accelerator type: N chips, or N TensorCores for v4 and v5p) or 'v5e:16x16' -> ('v5e',
    'v5e:16x16')."""
    generation, sep, rest = name.partition(":")
    if sep:
        if generation not in CHIPS:
            raise cli.UsageError(f"--topology {name!r}: the generation must be one of {sorted(CHIPS)}")
        return generation, name
    generation, _, count = name.partition("-")
    if generation not in CHIPS or not count.isdigit():
        raise cli.UsageError(
            f"--topology {name!r}: expected GEN-N (an accelerator type such as v5e-8, v5p-128) or GEN:AxB[xC], with "
            f"GEN one of {sorted(CHIPS)}"
        )
    chip = CHIPS[generation]
    chips = int(count) // 2 if generation in ("v4", "v5p") else int(count)  # v4/v5p types count TensorCores
    shape = _torus(chips, chip.dims)
    if shape is None:
        raise cli.UsageError(f"--topology {name!r}: {chips} chips do not form a {chip.dims}-D {generation} slice")
    return generation, f"{generation}:{'x'.join(map(str, shape))}"


def _torus(chips: int, dims: int) -> list[int] | None:
    """The most cube-like power-of-two shape of `chips` chips in `dims` dimensions as Cloud TPU writes it
    (ascending, 1s last: 2x4, 16x16, 2x2x1, 4x4x8), None if there is none."""
    if chips < 1 or chips & (chips - 1):
        return None
    shape = [1] * dims
    for i in range(int(math.log2(chips))):
        shape[i % dims] *= 2
    return sorted(shape, key=lambda n: (n == 1, n))


def topology_devices(topology: str, num_slices: int = 1) -> list:
    """The devices of `num_slices` slices of a TPU topology, described by libtpu (no TPU needed)."""
    try:
        from jax.experimental import topologies
    except ImportError as e:  # pragma: no cover  (every supported JAX has it)
        raise cli.UsageError(f"this JAX has no jax.experimental.topologies: {e}") from None
    try:
        kwargs = {"num_slices": num_slices} if num_slices > 1 else {}
        return list(topologies.get_topology_desc(topology_name=topology, platform="tpu", **kwargs).devices)
    except Exception as e:  # noqa: BLE001  (libtpu missing or the topology unknown: one line, not a traceback)
        raise cli.UsageError(
            f"cannot describe TPU topology {topology!r}: {' '.join(str(e).split())[:300]} (is libtpu installed? "
            "pip install -r requirements-tpu.txt)"
        ) from None


def abstract_step_inputs(config: ml_collections.ConfigDict, mesh, batch_size: int):
    """(model, tx, schedule, state, batch, rng) for `config` on `mesh`: the state, batch and key as
    ShapeDtypeStructs with the trainer's shardings (state replicated, batch split over every device)."""
    num_classes = config.model.num_classes or data_builders.num_classes(config.data)
    if not num_classes:
        raise cli.config_error("model.num_classes", 0, "the data set's class count (the data is not read here)")
    num_frames = factory.model_num_frames(config.num_frames, config.model.use_vmp)
    frame_size = data_builders.frame_size(config.data)
    factory.validate_backbone(config.model, config.num_frames, frame_size)
    total = config.num_train_steps if config.num_train_steps > 0 else 1000
    schedule = run.make_schedule(config, steps_per_epoch=max(total // 10, 1), total_steps=total)  # values only
    shape = (1, num_frames, *frame_size, 3)
    model, tx = run.model_and_optimizer(config, num_classes, shape, schedule)
    key = jax.random.key(0)
    state = jax.eval_shape(lambda r: steps.create_train_state(factory.init_variables(model, r, shape), tx), key)
    replicated, split = NamedSharding(mesh, P()), NamedSharding(mesh, P(AXIS))
    state = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), state)
    batch = {
        "frames": jax.ShapeDtypeStruct((batch_size, num_frames, *frame_size, 3), jnp.uint8, sharding=split),
        "label": jax.ShapeDtypeStruct((batch_size,), jnp.int32, sharding=split),
    }
    rng = jax.ShapeDtypeStruct(key.shape, key.dtype, sharding=replicated)
    return model, tx, schedule, state, batch, rng


def compile_train_step(config: ml_collections.ConfigDict, mesh, batch_size: int | None = None):
    """The trainer's train step of `config` compiled for `mesh`'s devices at global batch `batch_size`."""
    batch_size = config.batch_size if batch_size is None else batch_size
    model, tx, schedule, state, batch, rng = abstract_step_inputs(config, mesh, batch_size)
    step = steps.make_train_step(mesh, model, tx, config.vmp_lambda, schedule, config.grad_accum_steps)
    return step.lower(state, batch, rng).compile()


def compile_eval_step(config: ml_collections.ConfigDict, mesh, batch_size: int | None = None):
    """The trainer's eval step of `config` compiled for `mesh`'s devices at global batch `batch_size`."""
    batch_size = config.eval_batch_size if batch_size is None else batch_size
    model, _, _, state, batch, _ = abstract_step_inputs(config, mesh, batch_size)
    return steps.make_eval_step(mesh, model).lower(state, {"frames": batch["frames"]}).compile()


@dataclasses.dataclass(frozen=True)
class Memory:
    """Per-device bytes of a compiled program (XLA's buffer assignment)."""

    arguments: int
    outputs: int
    aliased: int  # outputs written into donated arguments
    temporaries: int
    code: int

    @property
    def total(self) -> int:
        return self.arguments + self.outputs - self.aliased + self.temporaries + self.code

    @classmethod
    def of(cls, compiled) -> Memory:
        m = compiled.memory_analysis()
        return cls(
            int(m.argument_size_in_bytes),
            int(m.output_size_in_bytes),
            int(m.alias_size_in_bytes),
            int(m.temp_size_in_bytes),
            int(m.generated_code_size_in_bytes),
        )


def cost(compiled) -> tuple[float, float]:
    """(FLOPs, HBM bytes accessed) of one run of the compiled per-device program (a loop body counted once)."""
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):  # older JAX: one dict per program
        analysis = analysis[0]
    return float(analysis.get("flops", 0.0)), float(analysis.get("bytes accessed", 0.0))


_SHAPE = re.compile(r"\b(pred|s8|u8|s16|u16|s32|u32|s64|u64|f16|bf16|f32|f64|c64)\[([\d,]*)\]")
_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2, "s32": 4, "u32": 4, "f32": 4}
_BYTES.update({"s64": 8, "u64": 8, "f64": 8, "c64": 8})
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = (.+?) ([a-z][\w\-]*)\((.*)$")
_FREE = {"parameter", "constant", "tuple", "get-tuple-element", "bitcast", "after-all", "partition-id", "iota"}
COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "collective-permute", "all-to-all", "send", "recv")
HOST_TRANSFERS = ("infeed", "outfeed", "host send", "host recv", "host custom-call")


def _bytes(type_text: str) -> int:
    return sum(_BYTES[t] * math.prod(int(d) for d in dims.split(",") if d) for t, dims in _SHAPE.findall(type_text))


def hlo_summary(hlo_text: str, top: int = 5) -> dict:
    """From a compiled HLO module's text: the collectives and host transfers it runs (counted per instruction in
    every computation), the `top` instructions outside fusions by bytes read and written (operands + result, a
    rough HBM-traffic estimate) with their JAX op names, the `top` JAX primitives by those bytes summed over their
    instructions ('kinds'), and the bytes of every such instruction summed (a loop body once, as XLA's cost
    analysis counts it)."""
    counts, heavy, fused = {}, [], set(re.findall(r"calls=%?([\w.\-]+)", hlo_text))
    computation, shapes = None, {}
    for line in hlo_text.splitlines():
        header = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{\s*$", line)
        if header:
            computation, shapes = header.group(1), {}
            continue
        m = _INSTRUCTION.match(line)
        if not m:
            continue
        name, type_text, opcode, rest = m.groups()
        shapes[name] = _bytes(type_text)
        base = opcode.removesuffix("-start").removesuffix("-done")
        if base in COLLECTIVES + HOST_TRANSFERS and not opcode.endswith("-done"):
            # send/recv move data between devices (across slices, over DCN) unless marked as host transfers.
            if base in ("send", "recv") and "is_host_transfer=true" in rest:
                base = f"host {base}"
            counts[base] = counts.get(base, 0) + 1
        if "custom_call_target" in rest and "host" in rest.lower():
            counts["host custom-call"] = counts.get("host custom-call", 0) + 1
        if computation in fused or opcode in _FREE or opcode.endswith("-done"):
            continue
        operands = re.findall(r"%([\w.\-]+)", rest.split("),")[0])
        read = sum(shapes.get(o, 0) for o in operands)
        if type_text.startswith("(") and opcode.endswith("-start"):
            # An async op's tuple holds its operands again beside the result: only the new buffer is moved (read
            # from the operand, written to the result).
            total = 2 * max(shapes[name] - read, 0)
        else:
            total = shapes[name] + read
        op_name = re.search(r'op_name="([^"]+)"', rest)
        where = op_name.group(1).split("/") if op_name else [name]
        heavy.append((total, opcode, "/".join(p for p in where[-3:] if not p.startswith(("jit(", "shard_map")))))
    heavy.sort(reverse=True)
    by_kind: dict[str, int] = {}
    for total, opcode, name in heavy:  # the JAX primitive that made the op (its op_name's last part), else the opcode
        kind = name.rsplit("/", 1)[-1] if "/" in name else opcode
        by_kind[kind] = by_kind.get(kind, 0) + total
    kinds = sorted(by_kind.items(), key=lambda kv: -kv[1])[:top]
    return {"counts": counts, "top": heavy[:top], "kinds": kinds, "top_level_bytes": sum(b for b, _, _ in heavy)}


@dataclasses.dataclass(frozen=True)
class Report:
    """What one compile says about a step on one topology."""

    topology: str
    devices: int
    hosts: int
    batch_per_device: float
    memory: Memory
    flops: float
    bytes: float
    chip: Chip

    @property
    def fits(self) -> bool:
        return self.memory.total <= self.chip.hbm_bytes

    @property
    def roofline_s(self) -> float:
        return max(self.flops / self.chip.peak_bf16_flops, self.bytes / self.chip.hbm_bytes_per_s)

    @property
    def mfu(self) -> float:
        return self.flops / (self.roofline_s * self.chip.peak_bf16_flops) if self.roofline_s else 0.0

    @property
    def clips_per_s_per_device(self) -> float:
        return self.batch_per_device / self.roofline_s if self.roofline_s else float("inf")


class DoesNotFit(Exception):
    """XLA refused to compile a step for lack of HBM; the message has its figures."""


def compiled_or_verdict(compile_fn, *args):
    """compile_fn(*args), or DoesNotFit with XLA's figures when the program cannot fit in HBM."""
    try:
        return compile_fn(*args)
    except Exception as e:  # noqa: BLE001  (XLA raises its own error type, with RESOURCE_EXHAUSTED in the text)
        text = " ".join(str(e).split())
        if "RESOURCE_EXHAUSTED" not in text and "Ran out of memory" not in text:
            raise
        used = re.search(r"Used ([\d.]+[KMGT]?) of ([\d.]+[KMGT]?) hbm", text) or re.search(
            r"required for HLO temporaries \(([\d.]+[KMGT]?)\) exceeds available HBM \(([\d.]+[KMGT]?)\)", text
        )
        figures = f"{used.group(1)}B needed, {used.group(2)}B of HBM per device" if used else text[:200]
        raise DoesNotFit(figures) from None


def report_step(config, topology: str, generation: str, devices: list, mesh, eval_step: bool = False):
    """(Report, the compiled step): the train (or eval) step of `config` compiled on `mesh` and measured;
    gradient accumulation's micro-step is compiled too, for FLOPs and bytes (module docstring)."""
    batch = config.eval_batch_size if eval_step else config.batch_size
    compiled = compiled_or_verdict(compile_eval_step if eval_step else compile_train_step, config, mesh)
    flops, moved = cost(compiled)
    k = 1 if eval_step else config.grad_accum_steps
    if k > 1:
        micro = ml_collections.ConfigDict(config.to_dict())
        micro.grad_accum_steps = 1
        flops, moved = (k * x for x in cost(compile_train_step(micro, mesh, batch // k)))
    hosts = len({d.process_index for d in devices})
    report = Report(
        topology, len(devices), hosts, batch / len(devices), Memory.of(compiled), flops, moved, CHIPS[generation]
    )
    return report, compiled


def largest_batch(config, mesh, chip: Chip, devices: int, limit: int = 4096) -> int:
    """The largest per-device train batch whose step fits in `chip`'s HBM (0: not even 1), compile only: doubling,
    then bisection. A batch must be a multiple of grad_accum_steps per device."""
    k = config.grad_accum_steps

    def fits(per_device: int) -> bool:
        trial = ml_collections.ConfigDict(config.to_dict())
        trial.batch_size = trial.eval_batch_size = per_device * devices
        trial.data.clips_per_video = trial.data.crops_per_clip = 1
        try:
            return Memory.of(compiled_or_verdict(compile_train_step, trial, mesh)).total <= chip.hbm_bytes
        except DoesNotFit:
            return False

    if not fits(k):
        return 0
    low, high = k, 2 * k
    while high <= limit and fits(high):
        low, high = high, 2 * high
    while high - low > k:
        middle = (low + high) // 2 // k * k
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


def input_cores_per_host(config, report: Report) -> dict[str, float]:
    """CPU cores per host the input pipeline needs to keep the roofline step fed, per storage (CLIPS_PER_CORE)."""
    frames = factory.model_num_frames(config.num_frames, config.model.use_vmp)
    height, width = data_builders.frame_size(config.data)
    scale = frames * height * width / REFERENCE_CLIP_PIXELS
    per_host = report.clips_per_s_per_device * report.devices / report.hosts
    return {storage: per_host * scale / rate for storage, rate in CLIPS_PER_CORE.items()}


VERDICT = (
    "verdict: does not fit ({figures}): lower the batch (--batch_search finds the largest), add "
    "--config.grad_accum_steps, bfloat16 (--config.model.dtype=bfloat16) or remat where the backbone has it "
    "(a remat_policy field of config.model.<backbone>)"
)


def _gib(n: float) -> str:
    return f"{n / GIB:.2f} GiB"


def describe(config, report: Report, summary: dict, what: str) -> str:
    """The lines the command prints for one compiled step."""
    m, chip = report.memory, report.chip
    lines = [
        f"{what} on {report.topology} ({report.devices} devices, {report.hosts} hosts), "
        f"{report.batch_per_device:g} clips per device:",
        f"  memory per device   arguments {_gib(m.arguments)}, outputs {_gib(m.outputs)} ({_gib(m.aliased)} into "
        f"donated arguments), temporaries {_gib(m.temporaries)}, code {_gib(m.code)}",
        f"  total {_gib(m.total)} of {_gib(chip.hbm_bytes)} HBM: " + ("fits" if report.fits else "DOES NOT FIT"),
        f"  per step            {report.flops / 1e12:.3f} TFLOP, {report.bytes / 1e9:.2f} GB of HBM traffic; roofline "
        f"{1e3 * report.roofline_s:.2f} ms ({'compute' if report.mfu > 0.999 else 'memory'}-bound), MFU "
        f"{100 * report.mfu:.1f}%",
        f"  throughput          {report.clips_per_s_per_device:.1f} clips/s per device, "
        f"{report.clips_per_s_per_device * report.devices:.0f} per slice at the roofline",
    ]
    if what == "train step":
        cores = input_cores_per_host(config, report)
        lines.append(
            "  input CPU cores     per host: " + ", ".join(f"{v:.0f} ({k.replace('_', ' ')})" for k, v in cores.items())
        )
    counts = ", ".join(f"{v} {k}" for k, v in sorted(summary["counts"].items())) or "none"
    lines.append(
        f"  collectives, host transfers in the program: {counts}"
        + (" (across slices: DCN traffic goes through the hosts)" if "slices" in report.topology else "")
    )
    total = summary["top_level_bytes"] or 1
    lines.append(
        f"  HBM bytes by op      {summary['top_level_bytes'] / 1e9:.2f} GB summed over the top-level ops (operands +"
        " results), by primitive: " + ", ".join(f"{kind} {100 * b / total:.0f}%" for kind, b in summary["kinds"])
    )
    lines.append(
        "  most HBM bytes (operands + result): "
        + "; ".join(f"{b / 1e9:.2f} GB {op} {name}" for b, op, name in summary["top"])
    )
    if not report.fits:
        lines.append("  " + VERDICT.format(figures=f"{_gib(m.total)} > {_gib(chip.hbm_bytes)} per device"))
    return "\n".join(lines)


def _define_flags(flag_values: flags.FlagValues, argv: Sequence[str] | None = None) -> None:
    define = dict(flag_values=flag_values)
    config_flags.DEFINE_config_file(
        "config", None, "Training config to compile.", lock_config=True, flag_values=flag_values, sys_argv=argv
    )
    flags.DEFINE_multi_string(
        "topology", None, "TPU slice: v4-8, v5e-8, v5e-256, v5p-128, v6e-256 or GEN:AxB[xC].", **define
    )
    flags.DEFINE_integer("num_slices", 1, "Slices of the topology (multi-slice).", lower_bound=1, **define)
    flags.DEFINE_bool("eval", True, "Also compile the eval step.", **define)
    flags.DEFINE_string(
        "hlo_dir", "", "Write each compiled step's optimised HLO here (TOPOLOGY.STEP.hlo.txt).", **define
    )
    flags.DEFINE_bool(
        "batch_search", False, "Find the largest per-device train batch that fits (compile only).", **define
    )
    flags.mark_flags_as_required(["config", "topology"], flag_values=flag_values)


def _command(argv: list[str], flag_values: flags.FlagValues) -> int:
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.ERROR)
    config = flag_values.config
    status = 0
    for name in flag_values.topology:
        generation, topology = topology_name(name)
        devices = topology_devices(topology, flag_values.num_slices)
        hosts = len({d.process_index for d in devices})
        validation.validate(config, num_devices=len(devices), num_processes=hosts)
        mesh = make_mesh(devices)
        shown = topology + (f" x {flag_values.num_slices} slices" if flag_values.num_slices > 1 else "")
        for what, is_eval in (("train step", False), ("eval step", True))[: 2 if flag_values.eval else 1]:
            try:
                report, compiled = report_step(config, shown, generation, devices, mesh, eval_step=is_eval)
            except DoesNotFit as e:
                cli.say(f"{what} on {shown}: {VERDICT.format(figures=e)}")
                status = 1
                continue
            hlo = compiled.as_text()
            if flag_values.hlo_dir:
                os.makedirs(flag_values.hlo_dir, exist_ok=True)
                path = os.path.join(flag_values.hlo_dir, f"{topology.replace(':', '_')}.{what.split()[0]}.hlo.txt")
                with open(path, "w", encoding="utf-8") as f:
                    f.write(hlo)
            cli.say(describe(config, report, hlo_summary(hlo), what))
            status = status or (0 if report.fits else 1)
        if flag_values.batch_search:
            best = largest_batch(config, mesh, CHIPS[generation], len(devices))
            cli.say(f"  largest train batch that fits: {best} clips per device ({best * len(devices)} per slice)")
    return status


def main(argv: Sequence[str]) -> int:
    """`python -m vmp_jax.aot ARGV...` in this process; returns the exit status (1: a step does not fit)."""
    return cli.call(_command, _define_flags, argv, prog="python -m vmp_jax.aot")


if __name__ == "__main__":
    os.environ.setdefault("TPU_SKIP_MDS_QUERY", "1")  # no metadata server to ask: this machine is not a TPU VM
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")  # compiling only: other libtpu processes may run
    cli.run(_command, _define_flags)
