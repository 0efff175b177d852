"""Exports a trained run for inference: an orbax bundle, a `jax.export` artifact and a PyTorch state dict.

    python -m vmp_jax.export --workdir DIR --out OUT [--step N] [--platforms cpu,cuda,tpu]

writes
    OUT/bundle/               orbax checkpoint of {'params', 'batch_stats'} only (no optimiser state, no data
                              iterator); `vmp_jax.bundle.load_bundle(OUT)` rebuilds the model from the two JSON
                              files below
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
from collections.abc import Callable, Sequence

import jax
import numpy as np
from absl import flags, logging

from vmp_jax import bundle, cli
from vmp_jax.models import factory, registry
from vmp_jax.training import run_dir, trained_run
from vmp_jax.training.run_dir import BUNDLE, EXPORTED, STATE_DICT


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
    platforms: Sequence[str] = bundle.DEFAULT_PLATFORMS,
    log: Callable[[str], None] = print,
) -> dict[str, str]:
    """Everything in the module docstring, for checkpoint `step` (None: latest) of `workdir`; {what: path}.

    `log` gets one line per file written (or skipped), naming it under `out` as given.
    """
    bundle.check_platforms(platforms)
    run = trained_run.load_run(workdir, step)
    given, out = out, os.path.abspath(out)  # orbax needs absolute paths; messages use the caller's
    shown = lambda name: os.path.join(given, name)  # noqa: E731
    written, exported, error = bundle.write_export(run, out, platforms)
    log(
        f"{shown(BUNDLE)}: params + batch_stats of step {run.step} ({_num_values(run.variables):,} values), "
        f"no optimiser state; {run_dir.CONFIG} and {run_dir.RUN_INFO} ({len(run.class_names)} classes) "
        "beside it"
    )
    height, width = run.frame_size
    log(
        f"{shown(EXPORTED)}: clips (b, {run.num_frames}, {height}, {width}, 3) uint8 -> logits "
        f"(b, {len(run.class_names)}) float32 for {', '.join(exported.platforms)}; reproduces the model at batch "
        f"sizes {', '.join(map(str, bundle.CHECK_BATCH_SIZES))} (max difference {error:.1e} of the logit scale)"
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
    flags.DEFINE_list(
        "platforms", list(bundle.DEFAULT_PLATFORMS), "Platforms to lower the jax.export artifact for.", **define
    )


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
