"""The model factory: `config.model` -> the VideoClassifier, its keyword plumbing, and its initial variables.

The config edge of `vmp_jax.models`, shared by the trainer, `trained_run` (export, predict, visualise) and the
inference bundle, so that none of them imports another to build a model.
"""

from __future__ import annotations

import importlib
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from vmp_jax import cli
from vmp_jax.models import registry
from vmp_jax.models.classifier import VideoClassifier
from vmp_jax.motion_prompt import LUMA_WEIGHTS, PARAMETRIZATIONS, POWER_NORMALISATIONS, normal_init


def backbone_kwargs(model_config: Any) -> dict:
    """The chosen backbone's keyword arguments: `config.model.<backbone name>` (none if that key is absent)."""
    name = model_config.backbone
    return model_config[name].to_dict() if name in model_config else {}


def vmp_kwargs(vmp_config: Any) -> dict:
    """VideoMotionPrompt fields from `config.model.vmp` (initialisers built from mean/std numbers)."""
    return {
        "luma": vmp_config.luma,
        "parametrization": vmp_config.parametrization,
        "m_init": normal_init(vmp_config.m_init_mean, vmp_config.m_init_std),
        "n_init": normal_init(vmp_config.n_init_mean, vmp_config.n_init_std),
        "pn": vmp_config.pn,
        # pn_init_value 0 keeps the PN's default coefficient; the spread is in log space, where it is learned
        "pn_init": (
            normal_init(math.log(vmp_config.pn_init_value), vmp_config.pn_init_log_std)
            if vmp_config.pn_init_value > 0
            else None
        ),
    }


def import_backbone_module(model_config: Any) -> None:
    """Imports `config.model.backbone_module` (a backbone outside vmp_jax registers itself on import), if set."""
    name = model_config.get("backbone_module", "")
    if name:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise ValueError(f"config.model.backbone_module={name!r} cannot be imported: {e}") from e


BN_SYNC = ("global", "host", "none")


def bn_sync_axis(scope: str, batch_axes: str | tuple[str, ...] | None) -> str | tuple[str, ...] | None:
    """The mapped axis BatchNorm syncs over for `config.model.bn_sync` = `scope`, in a step mapped over `batch_axes`
    (a name, or (across processes, within one process) as `vmp_jax.training.mesh.AXIS`): 'global' all of them,
    'host' the last one (each process's devices: no all-reduce crosses hosts), 'none' nothing (per-device
    statistics)."""
    if scope not in BN_SYNC:
        raise ValueError(f"model.bn_sync={scope!r}: expected one of {BN_SYNC}")
    if scope == "none" or batch_axes is None:
        return None
    if scope == "host" and isinstance(batch_axes, tuple):
        return batch_axes[-1]
    return batch_axes


DTYPES = ("float32", "bfloat16", "float16")


def validate_config(model: Any) -> None:
    """Raises cli.ConfigError naming the first invalid `model.*` key (importing `model.backbone_module` first)."""
    import_backbone_module(model)
    if model.backbone not in registry.BACKBONES:
        raise cli.config_error("model.backbone", model.backbone, f"one of {registry.names()}")
    if model.use_vmp:
        vmp = model.vmp
        if vmp.luma not in LUMA_WEIGHTS:
            raise cli.config_error("model.vmp.luma", vmp.luma, f"one of {sorted(LUMA_WEIGHTS)}")
        if vmp.parametrization not in PARAMETRIZATIONS:
            raise cli.config_error("model.vmp.parametrization", vmp.parametrization, f"one of {PARAMETRIZATIONS}")
        if vmp.pn not in POWER_NORMALISATIONS:
            raise cli.config_error("model.vmp.pn", vmp.pn, f"one of {POWER_NORMALISATIONS}")
        for key in ("pn_init_value", "pn_init_log_std"):
            if vmp[key] < 0:
                raise cli.config_error(
                    f"model.vmp.{key}", vmp[key], ">= 0 (pn_init_value 0 = the PN's default coefficient)"
                )
    if model.bn_sync not in BN_SYNC:
        raise cli.config_error("model.bn_sync", model.bn_sync, f"one of {BN_SYNC}")
    if model.dtype not in DTYPES:
        raise cli.config_error("model.dtype", model.dtype, "'float32', 'bfloat16' or 'float16'")


def build_model(
    model_config: Any,
    num_classes: int,
    bn_axis_name: str | tuple[str, ...] | None = None,
) -> VideoClassifier:
    """The classifier described by `config.model`; BatchNorm syncs over the mapped axes `bn_axis_name` the batch is
    split over, narrowed by `config.model.bn_sync` (`bn_sync_axis`)."""
    import_backbone_module(model_config)
    bn_axis_name = bn_sync_axis(model_config.get("bn_sync", "global"), bn_axis_name)
    return VideoClassifier(
        num_classes=num_classes,
        backbone=model_config.backbone,
        backbone_kwargs=tuple(sorted(backbone_kwargs(model_config).items())),
        use_vmp=model_config.use_vmp,
        vmp_kwargs=vmp_kwargs(model_config.vmp),
        dtype=jnp.dtype(model_config.dtype),
        bn_axis_name=bn_axis_name,
    )


def model_num_frames(num_frames: int, use_vmp: bool) -> int:
    """Frames per clip the model takes for T = `num_frames` prompts: T + 1 with the motion prompt layer, T without."""
    return num_frames + (1 if use_vmp else 0)


def validate_backbone(model_config: Any, num_frames: int, frame_size: tuple[int, int]) -> None:
    """Runs the backbone's `validate` hook on its fields and its input (T, H, W); ValueError naming the key."""
    entry = registry.entry(model_config.backbone)
    if entry.validate is not None:
        entry.validate(backbone_kwargs(model_config), (num_frames, *frame_size))


def init_variables(model: nn.Module, rng: jax.Array, input_shape: tuple[int, ...]) -> dict:
    """Model variables for clips of `input_shape` (1, T+1, H, W, 3); 'batch_stats' only when the model has BN."""
    params_rng, dropout_rng = jax.random.split(rng)
    # train=False: BatchNorm uses its running averages, so no mapped axis is needed outside shard_map.
    return model.init({"params": params_rng, "dropout": dropout_rng}, jnp.zeros(input_shape, jnp.float32), train=False)
