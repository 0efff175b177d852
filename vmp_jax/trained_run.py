"""A finished (or running) training run read back from its workdir: config, model, variables and classes.

`train.py` writes `DIR/config.json` (the resolved config), `DIR/run_info.json` (classes and input shape) and
orbax checkpoints in `DIR/checkpoints`; `load_run(DIR)` turns them into what inference, export and
visualisation need, without the optimiser state.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import jax
import ml_collections

from vmp_jax.models import factory

RUN_INFO = "run_info.json"
CONFIG = "config.json"


@dataclasses.dataclass(frozen=True)
class TrainedRun:
    """model.apply(variables, frames, train=False) -> (logits, variation); frames (B, num_frames, H, W, 3)."""

    workdir: str  # the run's workdir (load_run) or the export directory (export.load_bundle)
    step: int
    config: ml_collections.ConfigDict
    model: Any
    variables: dict  # {'params', 'batch_stats'} on the default device
    class_names: list[str]
    num_frames: int  # frames per clip the model takes (T + 1 with VMP, T without)
    frame_size: tuple[int, int]


def write_run_info(
    workdir: str,
    class_names: list[str],
    num_frames: int,
    frame_size: tuple[int, int],
    total_steps: int | None = None,
    step: int | None = None,
    num_devices: int | None = None,
) -> None:
    """What a reader of the run needs beyond the config: the class names and the model's input shape; for a
    training run its length in steps and device count, for an exported bundle the step its variables come from."""
    info = {"class_names": list(class_names), "num_frames": int(num_frames), "frame_size": list(frame_size)}
    for key, value in (("total_steps", total_steps), ("step", step), ("num_devices", num_devices)):
        if value is not None:
            info[key] = int(value)
    write_json(os.path.join(workdir, RUN_INFO), info)


def write_json(path: str, content: dict | str) -> None:
    """Replaces `path` atomically (a killed writer leaves the old file or the new one, never half of one)."""
    text = content if isinstance(content, str) else json.dumps(content, indent=2)
    with open(f"{path}.tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(f"{path}.tmp", path)


def read_json(path: str) -> dict:
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} not found: is {os.path.dirname(path)} a train.py workdir (or a vmp_jax.export output)?"
        )
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_run_info(workdir: str) -> dict:
    """DIR/run_info.json: class_names, num_frames, frame_size; total_steps (a run) or step (an export)."""
    return read_json(os.path.join(workdir, RUN_INFO))


def load_config(workdir: str) -> ml_collections.ConfigDict:
    """The resolved config a run was trained with (`DIR/config.json`)."""
    return ml_collections.ConfigDict(read_json(os.path.join(workdir, CONFIG)))


def read_model(directory: str) -> tuple[ml_collections.ConfigDict, Any, dict]:
    """(config, model, run info) from `directory/config.json` and `directory/run_info.json` (a workdir or a bundle)."""
    config = load_config(directory)
    info = read_run_info(directory)
    return config, factory.build_model(config.model, len(info["class_names"])), info


def make_trained_run(
    directory: str, step: int, config: ml_collections.ConfigDict, model: Any, variables: dict, info: dict
) -> TrainedRun:
    return TrainedRun(
        workdir=directory,
        step=step,
        config=config,
        model=model,
        variables=jax.device_get(variables),
        class_names=list(info["class_names"]),
        num_frames=int(info["num_frames"]),
        frame_size=tuple(info["frame_size"]),
    )


def load_run(workdir: str, step: int | None = None) -> TrainedRun:
    """The model and the variables of checkpoint `step` (None: the latest) of the run in `workdir`."""
    from vmp_jax import checkpointing

    workdir = os.path.abspath(workdir)
    config, model, info = read_model(workdir)
    checkpoints = checkpointing.Checkpoints(os.path.join(workdir, "checkpoints"))
    try:
        state = checkpoints.restore_state(step)
        restored_step = int(state["step"])
    finally:
        checkpoints.close()
    variables = {"params": state["params"], "batch_stats": state.get("batch_stats", {})}
    return make_trained_run(workdir, restored_step, config, model, variables, info)
