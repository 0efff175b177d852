"""Exports a trained run for inference: an orbax bundle, a `jax.export` artifact and a PyTorch state dict.

    python -m vmp_jax.export --workdir DIR --out OUT [--step N] [--platforms cpu,cuda,tpu]

writes
    OUT/bundle/               orbax checkpoint of {'params', 'batch_stats'} only (no optimiser state, no data
                              iterator); `load_bundle(OUT)` rebuilds the model from the two JSON files below
    OUT/config.json           the run's resolved config (as in DIR/config.json)
    OUT/run_info.json         class names, the model's input shape (num_frames, frame_size) and the exported step
    OUT/model.jax_export      serialised `jax.export` of clips (b, T+1, H, W, 3) uint8 -> logits (b, K) float32,
                              b symbolic, weights embedded, standardisation inside; load it with
                              `jax.export.deserialize(open(path, 'rb').read()).call(clips)` (jax + numpy only)
    OUT/pytorch_state_dict.pt backbones with a PyTorch converter (see `vmp_jax.models.registry`): the backbone's
                              PyTorch names (X3D: PyTorchVideo's, PySlowFast's with `shortcut_bn_always`) plus
                              `vmp.<param>` tensors, or the whole-model layout of the backbone's reference code
                              where its converter has a `join_vmp` hook (`convert.classifier_to_torch`)

After writing the artifact the export reads it back and checks that it reproduces the model's logits on random
clips at two batch sizes (2 and 1); a mismatch raises RuntimeError. The artifact is lowered for CPU, CUDA and TPU
by default (lowering needs no accelerator; the platforms must include the exporting machine's, where the check
runs). Its depthwise convs are chosen per platform at lowering (`vmp_jax.ops.depthwise_conv3d`: shifted
multiply-adds for CPU, the vendor grouped conv for CUDA and TPU), unless `VMP_DEPTHWISE_IMPL` forces one form.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags, logging

from vmp_jax import checkpointing, cli, trained_run
from vmp_jax.data.transforms import standardize
from vmp_jax.models import factory, registry
from vmp_jax.predict import EXPORTED, load_exported

BUNDLE = "bundle"
STATE_DICT = "pytorch_state_dict.pt"
DEFAULT_PLATFORMS = ("cpu", "cuda", "tpu")
CHECK_BATCH_SIZES = (2, 1)
# The artifact runs the model's own computation; any difference beyond float reassociation means it is wrong.
CHECK_TOLERANCE = 1e-5  # of max(1, |logits|)


def logits_fn(model: Any, variables: dict) -> Callable[[jax.Array], jax.Array]:
    """clips: (B, num_frames, H, W, 3) uint8 -> logits (B, K) float32: eval-mode model, standardising first."""
    return lambda clips: model.apply(variables, standardize(clips), train=False)[0]


def export_logits(
    model: Any,
    variables: dict,
    num_frames: int,
    frame_size: Sequence[int],
    platforms: Sequence[str] = DEFAULT_PLATFORMS,
) -> jax.export.Exported:
    """`jax.export` of `logits_fn` for clips of shape (b, num_frames, H, W, 3) uint8, b symbolic."""
    (batch,) = jax.export.symbolic_shape("b")
    spec = jax.ShapeDtypeStruct((batch, num_frames, *frame_size, 3), jnp.uint8)
    return jax.export.export(jax.jit(logits_fn(model, variables)), platforms=tuple(platforms))(spec)


def check_exported(
    exported: jax.export.Exported,
    model: Any,
    variables: dict,
    batch_sizes: Sequence[int] = CHECK_BATCH_SIZES,
    seed: int = 0,
) -> float:
    """Max |artifact - model| logit difference on random uint8 clips at each batch size, relative to
    max(1, |logits|); raises RuntimeError when it exceeds CHECK_TOLERANCE. Runs on this machine's platform."""
    shape = exported.in_avals[0].shape[1:]
    clips = np.random.default_rng(seed).integers(0, 256, (max(batch_sizes), *shape), dtype=np.uint8)
    expected = np.asarray(jax.jit(logits_fn(model, variables))(clips))
    scale = max(1.0, float(np.abs(expected).max()))
    worst = 0.0
    for b in batch_sizes:
        got = np.asarray(exported.call(clips[:b]))
        if got.shape != expected[:b].shape:
            raise RuntimeError(
                f"exported model gives logits of shape {got.shape} for {b} clips; expected {expected[:b].shape}"
            )
        error = float(np.abs(got - expected[:b]).max()) / scale
        if not error <= CHECK_TOLERANCE:  # also catches NaN
            raise RuntimeError(
                f"exported model does not reproduce the model: batch of {b}, max logit difference "
                f"{error:.2e} of the logit scale {scale:.3g} (tolerance {CHECK_TOLERANCE:g})"
            )
        worst = max(worst, error)
    return worst


def write_bundle(run: trained_run.TrainedRun, out: str) -> str:
    """OUT/bundle (variables only), OUT/config.json and OUT/run_info.json; returns the bundle directory."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, trained_run.CONFIG), "w", encoding="utf-8") as f:
        f.write(run.config.to_json_best_effort(indent=2, sort_keys=True))
    trained_run.write_run_info(out, run.class_names, run.num_frames, run.frame_size, step=run.step)
    bundle = os.path.abspath(os.path.join(out, BUNDLE))
    if os.path.exists(bundle):  # orbax refuses to overwrite; a re-export replaces the old bundle
        shutil.rmtree(bundle)
    checkpointing.save_variables(
        bundle, {"params": run.variables["params"], "batch_stats": run.variables["batch_stats"]}
    )
    return bundle


def load_bundle(out: str) -> trained_run.TrainedRun:
    """The model and variables exported to `out` (by `write_bundle`), for inference without optimiser state.

    `run.model.apply(run.variables, frames, train=False)` -> (logits, variation); frames (B, num_frames, H, W, 3)
    standardised float. `run.workdir` is `out`; `run.step` the training step the variables come from.
    """
    out = os.path.abspath(out)
    config, model, info = trained_run.read_model(out)
    shape = (1, int(info["num_frames"]), *info["frame_size"], 3)
    like = jax.eval_shape(lambda r: factory.init_variables(model, r, shape), jax.random.key(0))
    variables = checkpointing.restore_variables(
        os.path.join(out, BUNDLE), {"params": like["params"], "batch_stats": like.get("batch_stats", {})}
    )
    return trained_run.make_trained_run(out, int(info.get("step", -1)), config, model, variables, info)


def state_dict_format(config) -> str | None:
    """The PyTorch key format of the run's backbone, or None when its backbone has no registered converter."""
    entry = registry.entry(config.model.backbone)
    if entry.converter is None:
        return None
    return entry.load_converter().key_format(**factory.backbone_kwargs(config.model))


def export_run(
    workdir: str,
    out: str,
    step: int | None = None,
    platforms: Sequence[str] = DEFAULT_PLATFORMS,
    log: Callable[[str], None] = print,
) -> dict[str, str]:
    """Everything in the module docstring, for checkpoint `step` (None: latest) of `workdir`; {what: path}.

    `log` gets one line per file written (or skipped), naming it under `out` as given.
    """
    here = jax.export.default_export_platform()
    if here not in platforms:
        raise ValueError(
            f"platforms={tuple(platforms)} leave out this machine's {here!r}, on which the export "
            "checks the artifact; add it"
        )
    run = trained_run.load_run(workdir, step)
    given, out = out, os.path.abspath(out)  # orbax needs absolute paths; messages use the caller's
    shown = lambda name: os.path.join(given, name)  # noqa: E731
    written = {
        "bundle": write_bundle(run, out),
        "config": os.path.join(out, trained_run.CONFIG),
        "run_info": os.path.join(out, trained_run.RUN_INFO),
    }
    log(
        f"{shown(BUNDLE)}: params + batch_stats of step {run.step} ({_num_values(run.variables):,} values), "
        f"no optimiser state; {trained_run.CONFIG} and {trained_run.RUN_INFO} ({len(run.class_names)} classes) "
        "beside it"
    )

    exported = export_logits(run.model, run.variables, run.num_frames, run.frame_size, platforms)
    written["jax_export"] = os.path.join(out, EXPORTED)
    with open(written["jax_export"], "wb") as f:
        f.write(exported.serialize())
    error = check_exported(load_exported(written["jax_export"]), run.model, run.variables)
    height, width = run.frame_size
    log(
        f"{shown(EXPORTED)}: clips (b, {run.num_frames}, {height}, {width}, 3) uint8 -> logits "
        f"(b, {len(run.class_names)}) float32 for {', '.join(exported.platforms)}; reproduces the model at batch "
        f"sizes {', '.join(map(str, CHECK_BATCH_SIZES))} (max difference {error:.1e} of the logit scale)"
    )

    key_format = state_dict_format(run.config)
    if key_format is None:
        log(f"PyTorch state dict skipped: backbone {run.config.model.backbone!r} has no PyTorch converter")
        return written
    from vmp_jax import convert  # pylint: disable=import-outside-toplevel  (torch-side code only when needed)

    try:
        state_dict = convert.classifier_to_torch(
            run.variables, run.config.model.backbone, factory.backbone_kwargs(run.config.model)
        )
    except ImportError as e:
        log(f"PyTorch state dict skipped: {e}")
        return written
    import torch  # pylint: disable=import-outside-toplevel  (importable: classifier_to_torch needed it)

    written["pytorch_state_dict"] = os.path.join(out, STATE_DICT)
    torch.save(state_dict, written["pytorch_state_dict"])
    vmp = sorted(k for k in state_dict if k.startswith(("vmp.", "vmps.")))  # ours, or a `join_vmp` reference's
    log(
        f"{shown(STATE_DICT)}: {len(state_dict)} tensors, {key_format} names"
        + (f" plus {', '.join(vmp)}" if vmp else "")
    )
    return written


def _num_values(variables: dict) -> int:
    return sum(int(np.size(x)) for x in jax.tree.leaves(variables))


def _define_flags(flag_values: flags.FlagValues, argv: Sequence[str] | None = None) -> None:
    define = dict(flag_values=flag_values)
    flags.DEFINE_string("workdir", None, "The train.py run to export.", required=True, **define)
    flags.DEFINE_string(
        "out", None, "Output directory (created; existing files are replaced).", required=True, **define
    )
    flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).", **define)
    flags.DEFINE_list("platforms", list(DEFAULT_PLATFORMS), "Platforms to lower the jax.export artifact for.", **define)


def _command(argv: list[str], flag_values: flags.FlagValues) -> None:
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # orbax logs every file at INFO
    out = cli.output_dir(flag_values.out, "out")
    export_run(flag_values.workdir, out, flag_values.step, tuple(p for p in flag_values.platforms if p), log=cli.say)


def main(argv: Sequence[str]) -> int:
    """`python -m vmp_jax.export ARGV...` in this process; returns the exit status (2: a user error)."""
    return cli.call(_command, _define_flags, argv, prog="python -m vmp_jax.export")


if __name__ == "__main__":
    cli.run(_command, _define_flags)
