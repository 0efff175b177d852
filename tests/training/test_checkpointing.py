"""Checkpoint integrity: checksums committed with each step, and falling back past a damaged latest step."""

import glob
import hashlib
import json
import os
import pathlib

import jax.numpy as jnp
import numpy as np
import pytest

from vmp_jax.training import checkpointing


class Iterator:
    """The part of a grain iterator that checkpointing uses (grain hands a non-DatasetIterator its state as bytes)."""

    def __init__(self, position=0):
        self.position = position

    def get_state(self):
        return {"position": self.position}

    def set_state(self, state):
        self.position = json.loads(state)["position"]

    def start_prefetch(self):
        pass


def state_at(step):
    return {
        "step": jnp.asarray(step, jnp.int32),
        "w": jnp.arange(4096, dtype=jnp.float32) * step,
        "b": {"c": jnp.full((3, 5), float(step))},
    }


def save_steps(directory, steps=(1, 2), asynchronous=True):
    checkpoints = checkpointing.Checkpoints(directory, keep_last=5, keep_best=0, asynchronous=asynchronous)
    for step in steps:
        checkpoints.save(step, state_at(step), Iterator(10 * step))
    checkpoints.close()
    return checkpointing.Checkpoints(directory, keep_last=5, keep_best=0)


def largest_array_file(step_dir):
    files = glob.glob(os.path.join(step_dir, "state", "**", "d", "*"), recursive=True)
    return max(files, key=os.path.getsize)


@pytest.mark.parametrize("asynchronous", [True, False])
def test_each_step_commits_the_sha256_of_its_files(tmp_path, asynchronous):
    directory = str(tmp_path / "checkpoints")
    save_steps(directory, asynchronous=asynchronous)
    for step in (1, 2):
        step_dir = os.path.join(directory, str(step))
        manifest = json.loads(pathlib.Path(step_dir, "checksums.json").read_text())
        assert manifest["algorithm"] == "sha256"
        on_disk = sorted(
            os.path.relpath(os.path.join(root, name), step_dir)
            for root, _, names in os.walk(step_dir)
            for name in names
        )
        # every file but orbax's step metadata (rewritten at commit), its commit marker and the manifest itself
        assert sorted(manifest["files"]) == [
            f for f in on_disk if f not in ("_CHECKPOINT_METADATA", "commit_success.txt", "checksums.json")
        ]
        assert "data/process_0-of-1.json" in manifest["files"] and "state/_METADATA" in manifest["files"]
        for name, entry in manifest["files"].items():
            content = pathlib.Path(step_dir, name).read_bytes()
            assert entry == {"size": len(content), "sha256": hashlib.sha256(content).hexdigest()}
        assert checkpointing.checksum_problems(step_dir) == []


def garble_iterator_json(step_dir):
    with open(os.path.join(step_dir, "data", "process_0-of-1.json"), "w") as f:
        f.write('{"position": ')


def flip_4_bytes_of_an_array_file(step_dir):
    path = largest_array_file(step_dir)
    content = bytearray(pathlib.Path(path).read_bytes())
    middle = len(content) // 2
    content[middle : middle + 4] = bytes(255 - b for b in content[middle : middle + 4])
    pathlib.Path(path).write_bytes(bytes(content))


@pytest.mark.parametrize(
    "damage, named",
    [
        (garble_iterator_json, "data/process_0-of-1.json"),
        (lambda d: os.remove(os.path.join(d, "state", "_METADATA")), "state/_METADATA missing"),
        (lambda d: os.remove(largest_array_file(d)), "missing"),
        (flip_4_bytes_of_an_array_file, "differs from its saved sha256"),
    ],
    ids=["garbled_iterator_json", "deleted_metadata", "deleted_array_file", "4_flipped_bytes"],
)
def test_damaged_latest_step_falls_back_to_the_previous_one_and_is_moved_aside(tmp_path, capsys, damage, named):
    directory = str(tmp_path / "checkpoints")
    checkpoints = save_steps(directory)
    damage(os.path.join(directory, "2"))
    step, state, iterator = checkpoints.restore_latest(state_at(0), Iterator())
    assert step == 1 and iterator.position == 10
    np.testing.assert_array_equal(state["w"], np.asarray(state_at(1)["w"]))
    out = capsys.readouterr().out
    assert f"Checkpoint {directory}/2 is damaged: " in out and named in out
    # nothing lost: the damaged step is kept out of orbax's sight, and its step number can be saved again
    moved = glob.glob(os.path.join(directory, "damaged", "2-*"))
    assert len(moved) == 1 and f"to {moved[0]}" in out and os.path.isdir(os.path.join(moved[0], "state"))
    assert checkpoints.all_steps() == [1]
    checkpoints.save(2, state_at(2), Iterator(20))
    checkpoints.wait()
    assert checkpoints.restore_latest(state_at(0), Iterator())[0] == 2


def test_every_step_damaged_is_a_clear_error_and_moves_nothing(tmp_path):
    directory = str(tmp_path / "checkpoints")
    checkpoints = save_steps(directory)
    garble_iterator_json(os.path.join(directory, "1"))
    os.remove(os.path.join(directory, "2", "state", "_METADATA"))
    with pytest.raises(
        checkpointing.DamagedCheckpointError,
        match=rf"no checkpoint in {directory} can be restored.*Step 1: data/process_0-of-1.json.*"
        r"Step 2: state/_METADATA missing",
    ):
        checkpoints.restore_latest(state_at(0), Iterator())
    assert sorted(os.listdir(directory)) == ["1", "2"]


def test_a_step_without_checksums_is_restored_unverified_or_skipped_when_it_fails(tmp_path, capsys):
    directory = str(tmp_path / "checkpoints")
    checkpoints = save_steps(directory, steps=(1, 2, 3))
    for step in (2, 3):
        os.remove(os.path.join(directory, str(step), "checksums.json"))
    garble_iterator_json(os.path.join(directory, "3"))
    step, state, _ = checkpoints.restore_latest(state_at(0), Iterator())
    assert step == 2
    np.testing.assert_array_equal(state["w"], np.asarray(state_at(2)["w"]))
    out = capsys.readouterr().out
    assert f"{directory}/3 is damaged: does not restore (JSONDecodeError" in out
    assert f"{directory}/2 has no checksums.json" in out


def test_intact_step_that_does_not_fit_the_state_raises_instead_of_falling_back(tmp_path):
    directory = str(tmp_path / "checkpoints")
    checkpoints = save_steps(directory)
    other = {"step": jnp.zeros((), jnp.int32), "v": jnp.zeros(3)}
    with pytest.raises(ValueError, match=rf"{directory}/2 matches its checksums but does not restore"):
        checkpoints.restore_latest(other, Iterator())
    assert sorted(os.listdir(directory)) == ["1", "2"]


def test_restore_state_skips_a_damaged_latest_step(tmp_path):
    directory = str(tmp_path / "checkpoints")
    checkpoints = save_steps(directory)
    flip_4_bytes_of_an_array_file(os.path.join(directory, "2"))
    np.testing.assert_array_equal(checkpoints.restore_state()["w"], np.asarray(state_at(1)["w"]))
    with pytest.raises(checkpointing.DamagedCheckpointError, match=rf"{directory}/2 is damaged"):
        checkpoints.restore_state(2)
