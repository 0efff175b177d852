"""What a rerun on a workdir with checkpoints may change: keys that extend or observe the run, not the model, the
data stream or the optimiser's state."""

from __future__ import annotations

import json

import ml_collections

from vmp_jax import cli

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
ABSENT = "<absent>"


def flat_keys(tree: dict, prefix: str = "") -> dict:
    """{'a.b': value} for a nested dict (a config as JSON)."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flat_keys(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_differences(saved: dict, config: ml_collections.ConfigDict) -> dict[str, tuple]:
    """{key: (saved value, value in `config`)} for every key whose values differ; ABSENT where one lacks it.

    The fields of backbones neither config uses (`model.<other backbone>.*`) are no difference: they build nothing.
    """
    new = flat_keys(json.loads(config.to_json_best_effort()))
    old = flat_keys(saved)
    used = {old.get("model.backbone"), new.get("model.backbone"), "vmp"}

    def unused_backbone_field(key: str) -> bool:
        parts = key.split(".")
        return len(parts) > 2 and parts[0] == "model" and parts[1] not in used

    keys = sorted(
        k for k in new.keys() | old.keys() if new.get(k, ABSENT) != old.get(k, ABSENT) and not unused_backbone_field(k)
    )
    return {k: (old.get(k, ABSENT), new.get(k, ABSENT)) for k in keys}


def resume_changes(saved: dict, config: ml_collections.ConfigDict, where: str) -> list[str]:
    """How `config` differs from the `saved` config (JSON) of the run it resumes, as 'key: old -> new' lines.

    Raises cli.ConfigError naming every differing key that changes the model, the data stream or the optimiser
    (all but RESUMABLE_KEYS), so that a rerun the checkpoints cannot take stops before anything in the run is
    rewritten.
    """
    differing = config_differences(saved, config)
    lines = {k: f"{k}: {old!r} -> {new!r}" for k, (old, new) in differing.items()}
    # A key the saved config lacks (or has and this one lacks) comes from another version of vmp_jax, not a choice.
    refused = [
        line
        for k, line in lines.items()
        if k not in RESUMABLE_KEYS and ABSENT not in (differing[k][0], differing[k][1])
    ]
    if refused:
        raise cli.ConfigError(
            f"the config differs from the one the run in {where} was trained with, in keys that change "
            f"the model, the data or the optimiser ({'; '.join(refused)}): rerun with the saved values "
            "or use a new --workdir (the run is left as it was)"
        )
    return list(lines.values())
