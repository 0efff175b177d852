"""Everything orbax: periodic asynchronous checkpoints of the train state and the grain iterator state.

Each checkpoint step holds two items: `state` (the TrainState pytree) and `data` (the input iterator's
position, one JSON file per process), so a resumed run continues the data stream exactly where it stopped.
Kept: the latest `keep_last` steps plus the `keep_best` steps with the best eval metric (orbax preservation
policies). Incomplete (killed mid-write) checkpoints are never restored: orbax finalises a step atomically.
"""

from __future__ import annotations

import json
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

        With `state_like` the result has its structure and shardings; without, it comes back as saved (a nested
        dict of arrays on the default device).
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
