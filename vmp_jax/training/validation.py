"""Checks of a training config, run before anything compiles; each error names the offending key.

Each section is checked by its owner: `data` by `vmp_jax.data.builders.validate_config`, `model` by
`vmp_jax.models.factory.validate_config`, `optimizer` and `schedule` by `vmp_jax.training.optim.validate_config`;
this module checks the run's own keys and calls them. Unknown keys are rejected earlier, by the locked
ml_collections config (`--config.nope=1` fails in train.py).
"""

from __future__ import annotations

import ml_collections

from vmp_jax import cli
from vmp_jax.data import builders as data_builders
from vmp_jax.models import factory
from vmp_jax.training import optim, profiling


def validate(config: ml_collections.ConfigDict, num_devices: int, num_processes: int = 1) -> None:
    """Raises cli.ConfigError (a ValueError) naming the first invalid key of `config` for a run on `num_devices`
    devices in `num_processes` processes."""
    if config.num_frames < 2:
        raise cli.config_error(
            "num_frames", config.num_frames, "T >= 2 prompts per clip (the loader adds the VMP frame)"
        )
    if config.vmp_lambda < 0:
        raise cli.config_error("vmp_lambda", config.vmp_lambda, ">= 0")
    for key in ("batch_size", "eval_batch_size"):
        value = config[key]
        if value < 1 or value % num_devices:
            expected = f"a positive multiple of the device count ({num_devices} devices, {num_processes} processes)"
            raise cli.config_error(key, value, expected)
    accum = config.grad_accum_steps
    if accum < 1 or config.batch_size % (num_devices * accum):
        raise cli.config_error(
            "grad_accum_steps",
            accum,
            f">= 1 and dividing the per-device batch (batch_size={config.batch_size} over {num_devices} devices)",
        )
    if config.num_train_steps <= 0 and config.num_epochs <= 0:
        raise cli.config_error("num_train_steps", config.num_train_steps, "> 0, or config.num_epochs > 0")
    for key in ("log_every_steps", "checkpoint_every_steps"):
        if config[key] < 1:
            raise cli.config_error(key, config[key], ">= 1")
    try:
        profiling.parse_steps(config.profile_steps)
    except ValueError as e:
        raise cli.ConfigError(f"config.{e}") from None
    if config.keep_last < 1:
        raise cli.config_error("keep_last", config.keep_last, ">= 1")
    data_builders.validate_config(config.data, config.batch_size, num_processes)
    factory.validate_config(config.model)
    optim.validate_config(config.optimizer, config.schedule)


def validate_num_classes(config: ml_collections.ConfigDict, data_num_classes: int) -> None:
    """`config.model.num_classes` (0 = take the data's) must agree with the data set."""
    wanted = config.model.num_classes
    if wanted and wanted != data_num_classes:
        raise cli.config_error(
            "model.num_classes", wanted, f"0 (use the data's) or the data set's {data_num_classes} classes"
        )
