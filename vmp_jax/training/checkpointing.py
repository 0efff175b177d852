"""Everything orbax: periodic asynchronous checkpoints of the train state and the grain iterator state, and
single pytrees of variables (the inference bundle of `vmp_jax.export`).

Each checkpoint step holds two items: `state` (the TrainState pytree) and `data` (the input iterator's
position, one JSON file per process), so a resumed run continues the data stream exactly where it stopped.
Kept: the latest `keep_last` steps plus the `keep_best` steps with the best eval metric (orbax preservation
policies). Incomplete (killed mid-write) checkpoints are never restored: orbax finalises a step atomically.

Each step also holds `checksums.json`: the size and sha256 of every file of the step, written by process 0 once
every process's files are finalised and before orbax renames the step into place, so it is committed with the
checkpoint. `Checkpoints.restore_latest` verifies it and falls back to the previous step when the newest one is
damaged (a file missing, changed or unreadable), moving the damaged step to `damaged/` beside the steps.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils
from orbax.checkpoint.checkpoint_managers import preservation_policy

CHECKSUMS = "checksums.json"
DAMAGED = "damaged"
# orbax rewrites the step's metadata (a commit timestamp) after the checksums are written, and adds its commit
# marker when it renames the step into place; restoring the state and the iterator reads neither.
_UNCHECKED = frozenset({"_CHECKPOINT_METADATA", "commit_success.txt", CHECKSUMS, CHECKSUMS + ".tmp"})
# The name orbax gives a step directory while it is being written (orbax.checkpoint's atomicity.TMP_DIR_SUFFIX).
_ORBAX_TMP_SUFFIX = ".orbax-checkpoint-tmp"


class DamagedCheckpointError(ValueError):
    """No checkpoint of a directory can be restored: each is damaged (the message names what, per step)."""


class _IteratorSnapshot:
    """The iterator's state at save time: the live iterator moves on while an asynchronous save runs."""

    def __init__(self, iterator: Any):
        self._state = json.dumps(iterator.get_state()).encode()

    def get_state(self) -> bytes:
        return self._state


def _abstract(state_like: Any) -> Any:
    """Shapes, dtypes and shardings of `state_like`: what orbax restores into."""
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, state_like)


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _checked_files(step_dir: str) -> list[str]:
    """Paths (relative to `step_dir`, '/'-separated) of the files the checksums cover, sorted."""
    names = []
    for root, _, files in os.walk(step_dir):
        for name in files:
            relative = os.path.relpath(os.path.join(root, name), step_dir).replace(os.sep, "/")
            if relative not in _UNCHECKED:
                names.append(relative)
    return sorted(names)


def write_checksums(step_dir: str) -> None:
    """Writes `step_dir/checksums.json`: {'algorithm': 'sha256', 'files': {path: {'size', 'sha256'}}} of every file
    under `step_dir` (tmp file + rename, so a reader sees all of it or none)."""
    files = {}
    for relative in _checked_files(step_dir):
        path = os.path.join(step_dir, relative)
        files[relative] = {"size": os.path.getsize(path), "sha256": _sha256(path)}
    tmp = os.path.join(step_dir, CHECKSUMS + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"algorithm": "sha256", "files": files}, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(step_dir, CHECKSUMS))


def checksum_problems(step_dir: str) -> list[str] | None:
    """What is damaged in `step_dir` according to its checksums.json: [] when every listed file is there with its
    size and sha256, None when there is no checksums.json (a step saved by an older version)."""
    path = os.path.join(step_dir, CHECKSUMS)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
        files = manifest["files"]
        if manifest["algorithm"] != "sha256":
            return [f"{CHECKSUMS}: unknown algorithm {manifest['algorithm']!r}"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return [f"{CHECKSUMS} unreadable ({type(e).__name__}: {e})"]
    problems = []
    for relative, expected in files.items():
        file = os.path.join(step_dir, relative)
        if not os.path.isfile(file):
            problems.append(f"{relative} missing")
        elif os.path.getsize(file) != expected["size"]:
            problems.append(f"{relative} has {os.path.getsize(file)} bytes, {expected['size']} were saved")
        elif _sha256(file) != expected["sha256"]:
            problems.append(f"{relative} differs from its saved sha256")
    return problems


def _report(text: str) -> None:
    logging.warning("%s", text)
    if jax.process_index() == 0:
        print(text, flush=True)


def has_steps(directory: str) -> bool:
    """Whether `directory` holds any finished checkpoint step (a folder named by its step number)."""
    return os.path.isdir(directory) and any(name.isdigit() for name in os.listdir(directory))


class Checkpoints:
    """A CheckpointManager in `directory` for (train state, data iterator) pairs."""

    def __init__(
        self,
        directory: str,
        *,
        keep_last: int = 2,
        keep_best: int = 1,
        best_metric: str = "top1",
        asynchronous: bool = True,
    ):
        if keep_last < 1:
            raise ValueError(f"keep_last must be >= 1, got {keep_last}")
        self.directory = directory
        policies = [preservation_policy.LatestN(keep_last)]
        if keep_best > 0:
            policies.append(
                preservation_policy.BestN(
                    get_metric_fn=lambda metrics: metrics[best_metric],
                    n=keep_best,
                    keep_checkpoints_without_metrics=False,
                )
            )
        self._asynchronous = asynchronous
        self._saving_step = None
        options = ocp.CheckpointManagerOptions(
            preservation_policy=preservation_policy.AnyPreservationPolicy(policies),
            enable_async_checkpointing=asynchronous,
            cleanup_tmp_directories=True,
            async_options=ocp.AsyncOptions(post_finalization_callback=self._checksum_saving_step)
            if asynchronous
            else None,
        )
        self._manager = ocp.CheckpointManager(
            directory,
            options=options,
            item_handlers={"state": ocp.StandardCheckpointHandler(), "data": grain.checkpoint.CheckpointHandler()},
        )

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def step_directory(self, step: int) -> str:
        return os.path.join(self.directory, str(step))

    def save(self, step: int, state: Any, data_iterator: Any, metrics: dict | None = None) -> None:
        """Starts saving `state` and the iterator's position as `step` (returns before the write finishes)."""
        # orbax waits for the previous save before starting this one anyway; waiting here first keeps that save's
        # checksum callback from seeing the new step number.
        self._manager.wait_until_finished()
        self._saving_step = step
        self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                data=grain.checkpoint.CheckpointSave(_IteratorSnapshot(data_iterator)),
            ),
            metrics=metrics,
            force=True,
        )
        if not self._asynchronous and jax.process_index() == 0:
            write_checksums(self.step_directory(step))

    def _checksum_saving_step(self) -> None:
        """orbax's post-finalisation callback: it runs on the primary process once every process's files of the
        step are written and finalised, before the step directory is renamed from its temporary name."""
        final = self.step_directory(self._saving_step)
        write_checksums(final + _ORBAX_TMP_SUFFIX if os.path.isdir(final + _ORBAX_TMP_SUFFIX) else final)

    def restore(self, step: int, state_like: Any, data_iterator: Any) -> tuple[Any, Any]:
        """(state, iterator) at `step`; `state_like` gives the structure, shapes, dtypes and shardings.

        Raises DamagedCheckpointError if a file of the step differs from its checksums.
        """
        problems = checksum_problems(self.step_directory(step))
        if problems:
            raise DamagedCheckpointError(f"{self.step_directory(step)} is damaged: " + "; ".join(problems))
        return self._restore(step, state_like, data_iterator)

    def saved_data_state(self, step: int) -> dict | None:
        """This process's saved iterator state at `step`, None when the step has none for this process and process
        count (saved by a run on another number of processes)."""
        path = os.path.join(
            self.step_directory(step), "data", f"process_{jax.process_index()}-of-{jax.process_count()}.json"
        )
        if not os.path.isfile(path):
            return None
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    def _restore(self, step: int, state_like: Any, data_iterator: Any, data_position=None) -> tuple[Any, Any]:
        if data_position is not None:
            saved = self.saved_data_state(step)
            if not _same_layout(saved, data_iterator.get_state()):
                restored = self._manager.restore(
                    step, args=ocp.args.Composite(state=ocp.args.StandardRestore(_abstract(state_like)))
                )
                state = data_position(step)
                data_iterator.set_state(state)
                why = (
                    "has no data position for this process count"
                    if saved is None
                    else "has a data position of another worker count"
                )
                _report(
                    f"Checkpoint {self.step_directory(step)} {why} (process {jax.process_index()} of "
                    f"{jax.process_count()}): restored the train state; the data stream continues from the "
                    f"element after step {step}'s batches ({json.dumps(state)}), exact when no item was skipped."
                )
                return restored["state"], data_iterator
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(_abstract(state_like)),
                data=grain.checkpoint.CheckpointRestore(data_iterator),
            ),
        )
        return restored["state"], restored["data"]

    def restore_latest(self, state_like: Any, data_iterator: Any, data_position=None) -> tuple[int | None, Any, Any]:
        """(step, state, iterator) of the newest checkpoint that restores; (None, state_like, data_iterator) if
        there is none.

        `data_position(step)` -> the iterator state after `step` steps, for a step saved on another process or
        worker count (a job restarted on another slice): the state is restored and the iterator set to it, with a
        message. Without it such a step fails to restore.

        A newer step that is damaged (a file missing or differing from checksums.json, or, in a step without
        checksums, any error while restoring) is reported in one line naming its directory and what is damaged,
        then moved to `directory/damaged/<step>-<UTC time>` once an older step has restored, so that nothing is
        lost and orbax no longer sees it. If every step is damaged, DamagedCheckpointError names each step's
        problem and nothing is moved. A step whose files all match their checksums but that does not restore
        into `state_like` (a changed config) raises ValueError rather than falling back.
        """
        damaged = {}
        for step in sorted(self.all_steps(), reverse=True):
            step_dir = self.step_directory(step)
            problems = checksum_problems(step_dir)
            if problems:
                damaged[step] = "; ".join(problems)
                _report(f"Checkpoint {step_dir} is damaged: {damaged[step]}.")
                continue
            if problems is None:
                _report(
                    f"Checkpoint {step_dir} has no {CHECKSUMS} (saved by an older version, or synchronously and "
                    "killed before they were written): restoring it unverified."
                )
            try:
                state, iterator = self._restore(step, state_like, data_iterator, data_position)
            except Exception as e:  # unverified files fail in every way a reader can
                if problems is not None:
                    raise ValueError(
                        f"{step_dir} matches its checksums but does not restore into this run's "
                        f"state (was the config changed?): {type(e).__name__}: {_first_line(e)}"
                    ) from e
                damaged[step] = f"does not restore ({type(e).__name__}: {_first_line(e)})"
                _report(f"Checkpoint {step_dir} is damaged: {damaged[step]}.")
                continue
            if damaged:
                self._move_aside(sorted(damaged))
            return step, state, iterator
        if damaged:
            raise DamagedCheckpointError(
                f"no checkpoint in {self.directory} can be restored; nothing was moved. "
                + " ".join(f"Step {step}: {problem}." for step, problem in sorted(damaged.items()))
                + f" Move {self.directory} aside to start afresh."
            )
        return None, state_like, data_iterator

    def _move_aside(self, steps: list[int]) -> None:
        """Moves the directories of `steps` to `directory/damaged/` (process 0; the others wait)."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        if jax.process_index() == 0:
            os.makedirs(os.path.join(self.directory, DAMAGED), exist_ok=True)
            for step in steps:
                target = os.path.join(self.directory, DAMAGED, f"{step}-{stamp}")
                while os.path.exists(target):  # the same step damaged again within the second
                    target += "+"
                os.replace(self.step_directory(step), target)
                _report(f"Moved damaged checkpoint {self.step_directory(step)} to {target}.")
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices("vmp_jax_checkpointing_move_aside")
        self._manager.reload()

    def restore_state(self, step: int | None = None, state_like: Any = None) -> Any:
        """Only the train state (no data iterator), e.g. for export; `step=None` takes the latest whose files match
        their checksums (a damaged newer step is reported and left in place).

        With `state_like` the result has its structure and shardings; without, it has the saved structure as a
        nested dict of arrays on the default device, whatever the device count the run was trained on.
        """
        if step is None:
            step = self._latest_intact_step()
        else:
            problems = checksum_problems(self.step_directory(step))
            if problems:
                raise DamagedCheckpointError(f"{self.step_directory(step)} is damaged: " + "; ".join(problems))
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

    def _latest_intact_step(self) -> int:
        for step in sorted(self.all_steps(), reverse=True):
            problems = checksum_problems(self.step_directory(step))
            if not problems:
                return step
            _report(f"Checkpoint {self.step_directory(step)} is damaged: {'; '.join(problems)}; taking an older one.")
        raise FileNotFoundError(f"no intact checkpoint in {self.directory}")

    def wait(self) -> None:
        """Blocks until every started save is on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


def _same_layout(saved: Any, current: Any) -> bool:
    """Whether a saved iterator state fits an iterator whose state is `current`: the same keys and, with grain
    workers, the same number of them."""
    if not isinstance(saved, dict) or set(saved) != set(current):
        return False
    workers = "iterators_in_use_states"
    return workers not in current or len(saved[workers]) == len(current[workers])


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [""])[0][:300]


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
            raise ValueError(
                f"{directory} does not fit the model: differing entries (saved vs expected) "
                + ", ".join(f"{k}: {saved.get(k)} vs {wanted.get(k)}" for k in differing[:10])
            )
        return checkpointer.restore(directory, _abstract(like))


def _shapes(tree: Any) -> dict[str, tuple[int, ...]]:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(path): tuple(leaf.shape) for path, leaf in leaves}
