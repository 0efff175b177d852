"""The settings of an ablation sweep: named sets of training-config overrides, read from an ablation config and
applied to its base config."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import ml_collections

from vmp_jax.training import run_dir


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    overrides: dict[str, Any]


def settings_from_config(config: ml_collections.ConfigDict) -> list[Setting]:
    """The sweep's settings, checked: unique names usable as directory names, overrides as a mapping."""
    settings = []
    for i, entry in enumerate(config.settings):
        entry = dict(entry)
        if set(entry) != {"name", "overrides"}:
            raise ValueError(f"settings[{i}] must have exactly the keys 'name' and 'overrides', got {sorted(entry)}")
        name, overrides = str(entry["name"]), dict(entry["overrides"])
        if not name or name != os.path.basename(name) or name.startswith("."):
            raise ValueError(f"settings[{i}].name={name!r}: expected a plain directory name")
        settings.append(Setting(name, overrides))
    names = [s.name for s in settings]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"setting names must be unique, repeated: {duplicates}")
    if not settings:
        raise ValueError("config.settings is empty: nothing to sweep")
    if not config.seeds:
        raise ValueError("config.seeds is empty: expected at least one seed")
    return settings


def run_config(base: ml_collections.ConfigDict, setting: Setting, seed: int) -> ml_collections.ConfigDict:
    """`base` with the setting's overrides and `seed`; an unknown key raises naming the setting and the key."""
    config = ml_collections.ConfigDict(base.to_dict())
    for key, value in setting.overrides.items():
        *path, last = key.split(".")
        target = config
        for depth, part in enumerate(path):
            if part not in target or not isinstance(target[part], ml_collections.ConfigDict):
                raise ValueError(
                    f"setting {setting.name!r}: override {key!r} names no config section "
                    f"{'.'.join(path[: depth + 1])!r}"
                )
            target = target[part]
        if last not in target:
            raise ValueError(
                f"setting {setting.name!r}: override {key!r} is not a training-config key "
                f"(section {'.'.join(path) or 'top level'} has {sorted(target.keys())})"
            )
        target[last] = value
    config.seed = int(seed)
    return config


def run_directory(sweep_dir: str, setting: Setting, seed: int) -> str:
    """Where run (setting, seed) of the sweep in `sweep_dir` trains."""
    return run_dir.sweep_run_dir(sweep_dir, setting.name, seed)
