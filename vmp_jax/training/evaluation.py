"""Evaluation passes of a run: every view of every eval video through the eval step, scored per video."""

from __future__ import annotations

import jax
import numpy as np
from jax.experimental import multihost_utils

from vmp_jax.data import builders as data_builders
from vmp_jax.data import multiview
from vmp_jax.training.mesh import global_batch
from vmp_jax.training.steps import TrainState


def evaluate_views(
    eval_step_fn, state: TrainState, dataset, mesh, num_classes: int, num_views: int
) -> multiview.MultiViewAccumulator:
    """One pass over the eval split, every view's probabilities accumulated by video.

    The batch's 'video_index', 'label' and 'mask' travel as global arrays sharded like the frames, so they are
    gathered in the same (global, mesh) order as the logits: a process's rows need not be adjacent in the mesh
    (`jax.make_mesh` orders TPU devices by the physical torus, which can interleave hosts).
    """
    accumulator = multiview.MultiViewAccumulator(num_classes, num_views)
    for batch in dataset:
        arrays = global_batch(mesh, batch, keys=("frames", "video_index", "label", "mask"))
        rows = {"logits": eval_step_fn(state, {"frames": arrays.pop("frames")}), **arrays}
        if jax.process_count() > 1:
            rows = multihost_utils.process_allgather(rows, tiled=True)
        rows = jax.device_get(rows)
        accumulator.update(np.asarray(rows["logits"]), rows["video_index"], rows["label"], rows["mask"])
    return accumulator


def evaluate(eval_step_fn, state: TrainState, dataset, mesh, num_classes: int, num_views: int) -> dict:
    """One pass over the eval split; multi-view scores per video (top-1, top-5, mean-class accuracy)."""
    return evaluate_views(eval_step_fn, state, dataset, mesh, num_classes, num_views).result()


def evaluations(eval_step_fn, state: TrainState, data: data_builders.DataSplits, mesh, final: bool) -> dict:
    """{'eval': scores of the evaluation during training[, 'test': the full multi-view test, at the end]}.

    The evaluations during training take data.eval_during_training_clips x _crops views per video (what keep_best
    ranks checkpoints by, the last step included); the last step also takes data.eval_num_clips x _crops as 'test'
    when those views differ.
    """
    if data.eval_during_training is None:
        return {"eval": evaluate(eval_step_fn, state, data.eval, mesh, data.num_classes, data.eval_num_views)}
    splits = {
        "eval": evaluate(
            eval_step_fn, state, data.eval_during_training, mesh, data.num_classes, data.eval_during_training_num_views
        )
    }
    if final:
        splits["test"] = evaluate(eval_step_fn, state, data.eval, mesh, data.num_classes, data.eval_num_views)
    return splits
