"""Everything orbax: periodic asynchronous checkpoints of the train state and the grain iterator state, and
single pytrees of variables (the inference bundle of `vmp_jax.export`).

Each checkpoint step holds two items: `state` (the TrainState pytree) and `data` (the input iterator's
position, one JSON file per process), so a resumed run continues the data stream exactly where it stopped.
Kept: the latest `keep_last` steps plus the `keep_best` steps with the best eval metric (orbax preservation
policies). Incomplete (killed mid-write) checkpoints are never restored: orbax finalises a step atomically.
"""

from __future__ import annotations

import json
import os
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy


class _IteratorSnapshot:
    """The iterator's state at save time: the live iterator moves on while an asynchronous save runs."""

    def __init__(self, iterator: Any):
        self._state = json.dumps(iterator.get_state()).encode()

    def get_state(self) -> bytes:
        return self._state


def _abstract(state_like: Any) -> Any:
    """Shapes, dtypes and shardings of `state_like`: what orbax restores into."""
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, state_like)


class Checkpoints:
    """A CheckpointManager in `directory` for (train state, data iterator) pairs."""

    def __init__(self, directory: str, *, keep_last: int = 2, keep_best: int = 1, best_metric: str = "top1",
                 asynchronous: bool = True):
        if keep_last < 1:
            raise ValueError(f"keep_last must be >= 1, got {keep_last}")
        self.directory = directory
        policies = [preservation_policy.LatestN(keep_last)]
        if keep_best > 0:
            policies.append(preservation_policy.BestN(get_metric_fn=lambda metrics: metrics[best_metric],
                                                      n=keep_best, keep_checkpoints_without_metrics=False))
        options = ocp.CheckpointManagerOptions(
            preservation_policy=preservation_policy.AnyPreservationPolicy(policies),
            enable_async_checkpointing=asynchronous, cleanup_tmp_directories=True)
        self._manager = ocp.CheckpointManager(
            directory, options=options,
            item_handlers={"state": ocp.StandardCheckpointHandler(), "data": grain.checkpoint.CheckpointHandler()})

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, state: Any, data_iterator: Any, metrics: dict | None = None) -> None:
        """Starts saving `state` and the iterator's position as `step` (returns before the write finishes)."""
        self._manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), data=grain.checkpoint.CheckpointSave(_IteratorSnapshot(data_iterator))),
            metrics=metrics, force=True)

    def restore(self, step: int, state_like: Any, data_iterator: Any) -> tuple[Any, Any]:
        """(state, iterator) at `step`; `state_like` gives the structure, shapes, dtypes and shardings."""
        restored = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(_abstract(state_like)),
            data=grain.checkpoint.CheckpointRestore(data_iterator)))
        return restored["state"], restored["data"]

    def restore_state(self, step: int | None = None, state_like: Any = None) -> Any:
        """Only the train state (no data iterator), e.g. for export; `step=None` takes the latest.

        With `state_like` the result has its structure and shardings; without, it has the saved structure as a
        nested dict of arrays on the default device, whatever the device count the run was trained on.
        """
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        if state_like is None:
            # The saved shardings name the training run's devices, which this process may not have (a run trained
            # on 2 CPU devices, read back in a 1-device process): restore every array onto the default device.
            device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
            metadata = self._manager.item_metadata(step)["state"]
            abstract = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), metadata)
        else:
            abstract = _abstract(state_like)
        restored = self._manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))
        return restored["state"]

    def wait(self) -> None:
        """Blocks until every started save is on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


def save_variables(directory: str, variables: Any) -> None:
    """Writes a pytree of arrays (e.g. {'params', 'batch_stats'}) as one orbax checkpoint in a new `directory`."""
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(os.path.abspath(directory), variables)


def restore_variables(directory: str, like: Any) -> Any:
    """The pytree saved by `save_variables`, restored into the structure, shapes and dtypes of `like`.

    `like` may hold arrays or `jax.ShapeDtypeStruct`s (e.g. from `jax.eval_shape` of the model's init); a saved tree
    with other keys or shapes raises ValueError.
    """
    directory = os.path.abspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"no checkpoint directory {directory}")
    with ocp.StandardCheckpointer() as checkpointer:
        # orbax restores a differently shaped array into the target's shape without complaint: compare first.
        saved = _shapes(checkpointer.metadata(directory).item_metadata)
        wanted = _shapes(like)
        if saved != wanted:
            differing = sorted(k for k in saved.keys() | wanted.keys() if saved.get(k) != wanted.get(k))
            raise ValueError(f"{directory} does not fit the model: differing entries (saved vs expected) "
                             + ", ".join(f"{k}: {saved.get(k)} vs {wanted.get(k)}" for k in differing[:10]))
        return checkpointer.restore(directory, _abstract(like))


def _shapes(tree: Any) -> dict[str, tuple[int, ...]]:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(path): tuple(leaf.shape) for path, leaf in leaves}
