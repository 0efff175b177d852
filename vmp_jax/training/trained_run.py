"""A finished (or running) training run read back from its workdir: config, model, variables and classes.

`train.py` writes `DIR/config.json` (the resolved config), `DIR/run_info.json` (classes and input shape) and
orbax checkpoints in `DIR/checkpoints`; `load_run(DIR)` turns them into what inference, export and
visualisation need, without the optimiser state.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import ml_collections

from vmp_jax.models import factory
from vmp_jax.training import run_dir


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


def read_model(directory: str) -> tuple[ml_collections.ConfigDict, Any, dict]:
    """(config, model, run info) from `directory/config.json` and `directory/run_info.json` (a workdir or a bundle)."""
    config = run_dir.load_config(directory)
    info = run_dir.read_run_info(directory)
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
    from vmp_jax.training import checkpointing  # orbax: only when a run's checkpoints are read

    workdir = os.path.abspath(workdir)
    config, model, info = read_model(workdir)
    checkpoints = checkpointing.Checkpoints(run_dir.checkpoint_dir(workdir))
    try:
        state = checkpoints.restore_state(step)
        restored_step = int(state["step"])
    finally:
        checkpoints.close()
    variables = {"params": state["params"], "batch_stats": state.get("batch_stats", {})}
    return make_trained_run(workdir, restored_step, config, model, variables, info)
