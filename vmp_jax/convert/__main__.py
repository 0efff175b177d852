"""Imports a PyTorch checkpoint of any registered backbone, with or without VMP parameters, as an inference bundle.

    python -m vmp_jax.convert --checkpoint FILE --config CONFIG --out DIR [--class_names FILE] [--config.key=value ...]

CONFIG (a training config: `config.model` says which model the checkpoint is, `num_frames` and the data keys its
input) and FILE (see `vmp_jax.convert.torch_io.load_torch_checkpoint`; e.g. the official VMPs checkpoint, whose
`vmps.m`/`vmps.n` become the motion prompt's m and n) give DIR laid out as `vmp_jax.export` writes it:
DIR/bundle, config.json, run_info.json and model.jax_export, so that `python -m vmp_jax.predict --export DIR`,
`python -m vmp_jax.visualize --workdir DIR` and `vmp_jax.bundle.load_bundle(DIR)` take it.

The class names come from --class_names, else `config.data.class_names`, else 'class_0', ... for
`config.model.num_classes`. The checkpoint's head must have that many classes; a model with the motion prompt
layer needs a checkpoint that has its parameters (else --config.model.use_vmp=False).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import jax
from absl import flags, logging
from ml_collections import config_flags

from vmp_jax import bundle, cli
from vmp_jax.convert import classifier, torch_io
from vmp_jax.data import builders as data_builders
from vmp_jax.data import manifest
from vmp_jax.models import factory, registry
from vmp_jax.training import run_dir, trained_run


def class_names(config, path: str) -> list[str]:
    """The model's class names (module docstring); ValueError when nothing says how many classes it has."""
    path = path or config.data.class_names
    if path:
        names = manifest.read_class_names(path)
        if config.model.num_classes and config.model.num_classes != len(names):
            raise ValueError(
                f"config.model.num_classes={config.model.num_classes}: the class names file {path} "
                f"has {len(names)} names"
            )
        return names
    if config.model.num_classes < 1:
        raise ValueError(
            "the number of classes is unknown: give --class_names FILE, --config.data.class_names or "
            "--config.model.num_classes"
        )
    return [f"class_{i}" for i in range(config.model.num_classes)]


def input_shape(config) -> tuple[int, tuple[int, int]]:
    """(frames per clip the model takes, (H, W)) of the config's data."""
    return factory.model_num_frames(config.num_frames, config.model.use_vmp), data_builders.frame_size(config.data)


def import_checkpoint(
    checkpoint: str, config, out: str, names: list[str], platforms=bundle.DEFAULT_PLATFORMS, log=print
) -> dict[str, str]:
    """Writes the bundle of the module docstring for `checkpoint` read as `config`'s model; {what: path}."""
    bundle.check_platforms(platforms)
    factory.import_backbone_module(config.model)
    backbone = config.model.backbone
    num_frames, frame_size = input_shape(config)
    factory.validate_backbone(config.model, config.num_frames, frame_size)
    model = factory.build_model(config.model, len(names))
    init = jax.device_get(factory.init_variables(model, jax.random.key(0), (1, num_frames, *frame_size, 3)))
    state_dict = torch_io.load_torch_checkpoint(checkpoint)
    _, vmp = classifier.split_vmp(registry.entry(backbone).load_converter(), state_dict)
    if config.model.use_vmp and not vmp:
        raise ValueError(
            f"{checkpoint} has no motion prompt parameters but the config's model has the layer: add "
            "--config.model.use_vmp=False for a backbone-only checkpoint"
        )
    variables = classifier.load_pretrained_backbone(
        init, state_dict, backbone, factory.backbone_kwargs(config.model), new_head=False
    )
    variables = {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}
    os.makedirs(out, exist_ok=True)
    run = trained_run.make_trained_run(
        out, 0, config, model, variables, {"class_names": names, "num_frames": num_frames, "frame_size": frame_size}
    )
    written, _, error = bundle.write_export(run, out, platforms)
    log(
        f"{out}: {backbone} from {checkpoint}"
        + (f" with motion prompt {', '.join(sorted(vmp))}" if vmp else "")
        + f"; {len(names)} classes, clips ({num_frames}, {frame_size[0]}, {frame_size[1]}, 3); "
        f"{run_dir.EXPORTED} reproduces the model (max difference {error:.1e} of the logit scale)"
    )
    return written


def _define_flags(flag_values: flags.FlagValues, argv: Sequence[str] | None = None) -> None:
    define = dict(flag_values=flag_values)
    config_flags.DEFINE_config_file(
        "config",
        None,
        "The training config describing the checkpoint's model.",
        lock_config=True,
        flag_values=flag_values,
        sys_argv=argv,
    )
    flags.DEFINE_string(
        "checkpoint", None, "PyTorch checkpoint (.pyth/.pt/.pth/.bin/.safetensors).", required=True, **define
    )
    flags.DEFINE_string(
        "out", None, "Output directory (created; existing files are replaced).", required=True, **define
    )
    flags.DEFINE_string(
        "class_names", "", "File with one class name per line (default: config.data.class_names).", **define
    )
    flags.DEFINE_list(
        "platforms", list(bundle.DEFAULT_PLATFORMS), "Platforms to lower the jax.export artifact for.", **define
    )
    flags.mark_flag_as_required("config", flag_values=flag_values)


def _command(argv: list[str], flag_values: flags.FlagValues) -> None:
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    config = flag_values.config
    out = os.path.abspath(cli.output_dir(flag_values.out, "out"))
    import_checkpoint(
        flag_values.checkpoint,
        config,
        out,
        class_names(config, flag_values.class_names),
        tuple(p for p in flag_values.platforms if p),
        log=cli.say,
    )


def main(argv: Sequence[str]) -> int:
    """`python -m vmp_jax.convert ARGV...` in this process; returns the exit status (2: a user error)."""
    return cli.call(_command, _define_flags, argv, prog="python -m vmp_jax.convert")


if __name__ == "__main__":
    cli.run(_command, _define_flags)
