"""Checks of a training config, run before anything compiles; each error names the offending key.

Unknown keys are rejected earlier, by the locked ml_collections config (`--config.nope=1` fails in train.py).
"""

from __future__ import annotations

import json

import ml_collections

from vmp_jax import cli, optim, profiling
from vmp_jax.data import host_cores
from vmp_jax.models import factory, registry
from vmp_jax.motion_prompt import LUMA_WEIGHTS, PARAMETRIZATIONS, POWER_NORMALISATIONS


class ConfigError(cli.UsageError):
    """An invalid training-config value (a ValueError); the command-line tools report it as one line."""


def _fail(key: str, value, expected: str) -> None:
    raise ConfigError(f"config.{key}={value!r}: expected {expected}")


def validate(config: ml_collections.ConfigDict, num_devices: int, num_processes: int = 1) -> None:
    """Raises ConfigError (a ValueError) naming the first invalid key of `config` for a run on `num_devices` devices."""
    if config.num_frames < 2:
        _fail("num_frames", config.num_frames, "T >= 2 prompts per clip (the loader adds the VMP frame)")
    if config.vmp_lambda < 0:
        _fail("vmp_lambda", config.vmp_lambda, ">= 0")
    for key in ("batch_size", "eval_batch_size"):
        value = config[key]
        if value < 1 or value % num_devices:
            _fail(
                key,
                value,
                f"a positive multiple of the device count ({num_devices} devices, {num_processes} processes)",
            )
    accum = config.grad_accum_steps
    if accum < 1 or config.batch_size % (num_devices * accum):
        _fail(
            "grad_accum_steps",
            accum,
            f">= 1 and dividing the per-device batch (batch_size={config.batch_size} over {num_devices} devices)",
        )
    if config.num_train_steps <= 0 and config.num_epochs <= 0:
        _fail("num_train_steps", config.num_train_steps, "> 0, or config.num_epochs > 0")
    for key in ("log_every_steps", "checkpoint_every_steps"):
        if config[key] < 1:
            _fail(key, config[key], ">= 1")
    try:
        profiling.parse_steps(config.profile_steps)
    except ValueError as e:
        raise ConfigError(f"config.{e}") from None
    if config.keep_last < 1:
        _fail("keep_last", config.keep_last, ">= 1")
    for prefix in ("eval_num", "eval_during_training"):
        if config.data[f"{prefix}_clips"] < 1:
            _fail(f"data.{prefix}_clips", config.data[f"{prefix}_clips"], ">= 1 clips per video")
        if config.data[f"{prefix}_crops"] not in (1, 3):
            _fail(f"data.{prefix}_crops", config.data[f"{prefix}_crops"], "1 (centre) or 3 crops per clip")
    per_process = config.batch_size // num_processes
    for key in ("clips_per_video", "crops_per_clip"):
        if config.data[key] < 1:
            _fail(f"data.{key}", config.data[key], ">= 1")
    if per_process % (config.data.clips_per_video * config.data.crops_per_clip):
        _fail(
            "data.clips_per_video",
            config.data.clips_per_video,
            f"clips_per_video x crops_per_clip ({config.data.crops_per_clip}) dividing the batch per process "
            f"(batch_size={config.batch_size} over {num_processes} processes)",
        )
    for key in ("num_workers", "eval_num_workers"):
        try:
            host_cores.resolve_num_workers(config.data[key], f"data.{key}")
        except ValueError as e:
            raise ConfigError(f"config.{e}") from None
    model = config.model
    factory.import_backbone_module(model)
    if model.backbone not in registry.BACKBONES:
        _fail("model.backbone", model.backbone, f"one of {registry.names()}")
    if model.use_vmp:
        if model.vmp.luma not in LUMA_WEIGHTS:
            _fail("model.vmp.luma", model.vmp.luma, f"one of {sorted(LUMA_WEIGHTS)}")
        if model.vmp.parametrization not in PARAMETRIZATIONS:
            _fail("model.vmp.parametrization", model.vmp.parametrization, f"one of {PARAMETRIZATIONS}")
        if model.vmp.pn not in POWER_NORMALISATIONS:
            _fail("model.vmp.pn", model.vmp.pn, f"one of {POWER_NORMALISATIONS}")
        if model.vmp.pn_init_value < 0 or model.vmp.pn_init_log_std < 0:
            key = "pn_init_value" if model.vmp.pn_init_value < 0 else "pn_init_log_std"
            _fail(f"model.vmp.{key}", model.vmp[key], ">= 0 (pn_init_value 0 = the PN's default coefficient)")
    if model.bn_sync not in factory.BN_SYNC:
        _fail("model.bn_sync", model.bn_sync, f"one of {factory.BN_SYNC}")
    if model.dtype not in ("float32", "bfloat16", "float16"):
        _fail("model.dtype", model.dtype, "'float32', 'bfloat16' or 'float16'")
    if config.optimizer.name not in optim.OPTIMIZERS:
        _fail("optimizer.name", config.optimizer.name, f"one of {optim.OPTIMIZERS}")
    schedule = config.schedule
    if schedule.name not in optim.SCHEDULES:
        _fail("schedule.name", schedule.name, f"one of {optim.SCHEDULES}")
    if schedule.base_lr <= 0:
        _fail("schedule.base_lr", schedule.base_lr, "> 0")
    if schedule.name == "steps" and len(schedule.relative_rates) != len(schedule.boundaries_epochs) + 1:
        _fail(
            "schedule.relative_rates",
            tuple(schedule.relative_rates),
            f"one more rate than schedule.boundaries_epochs={tuple(schedule.boundaries_epochs)}",
        )


def validate_num_classes(config: ml_collections.ConfigDict, data_num_classes: int) -> None:
    """`config.model.num_classes` (0 = take the data's) must agree with the data set."""
    wanted = config.model.num_classes
    if wanted and wanted != data_num_classes:
        _fail("model.num_classes", wanted, f"0 (use the data's) or the data set's {data_num_classes} classes")


# Keys a resumed run may change: they extend the run or change what it records and keeps, not the model, the data
# stream or the optimiser's state (a longer run does stretch a decaying schedule over its new length).
RESUMABLE_KEYS = (
    "num_train_steps",
    "num_epochs",
    "log_every_steps",
    "eval_every_steps",
    "checkpoint_every_steps",
    "keep_last",
    "keep_best",
    "progress_bar",
    "eval_batch_size",
    "init_checkpoint",
    "compilation_cache_dir",
    "profile_steps",
    "data.eval_num_workers",
    "data.read_threads",
    "data.per_worker_buffer_size",
    # another worker count resumes at the step's element (checkpointing.Checkpoints.restore_latest)
    "data.num_workers",
    "data.eval_num_clips",
    "data.eval_num_crops",
    "data.eval_during_training_clips",
    "data.eval_during_training_crops",
)


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def resume_changes(saved: dict, config: ml_collections.ConfigDict, where: str) -> list[str]:
    """How `config` differs from the `saved` config (JSON) of the run it resumes, as 'key: old -> new' lines.

    Raises ConfigError naming every differing key that changes the model, the data stream or the optimiser (all but
    RESUMABLE_KEYS), so that a rerun the checkpoints cannot take stops before anything in the run is rewritten.
    """
    new = _flatten(json.loads(config.to_json_best_effort()))
    old = _flatten(saved)
    differing = sorted(k for k in new.keys() | old.keys() if new.get(k, "<absent>") != old.get(k, "<absent>"))
    lines = [f"{k}: {old.get(k, '<absent>')!r} -> {new.get(k, '<absent>')!r}" for k in differing]
    # A key the saved config lacks (or has and this one lacks) comes from another version of vmp_jax, not a choice.
    refused = [line for k, line in zip(differing, lines) if k not in RESUMABLE_KEYS and k in old and k in new]
    if refused:
        raise ConfigError(
            f"the config differs from the one the run in {where} was trained with, in keys that change "
            f"the model, the data or the optimiser ({'; '.join(refused)}): rerun with the saved values "
            "or use a new --workdir (the run is left as it was)"
        )
    return lines
