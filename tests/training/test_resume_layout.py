"""Resuming on another process or worker count: the train state from the checkpoint, the data stream from the step."""

import os

import numpy as np
import pytest
from processes import finish, start_train, start_train_job

from vmp_jax.data import pipeline
from vmp_jax.training.metric_writers import read_metrics


class _Numbers:
    def __len__(self):
        return 48

    def __getitem__(self, i):
        return {"frames": np.full((1, 1, 1, 3), i, np.uint8), "label": np.int32(0)}


def _ids(batch):
    return batch["frames"][:, 0, 0, 0, 0].tolist()


@pytest.mark.parametrize("workers", [0, 2, 3])
def test_train_state_at_continues_the_stream_after_whole_worker_rounds(workers):
    ds = pipeline.train_dataset(_Numbers(), batch_size=4, seed=0, num_workers=workers)
    plain = iter(pipeline.train_dataset(_Numbers(), batch_size=4, seed=0))
    rounds = max(workers, 1) * 2  # batches; the whole stream's first 4 x rounds elements
    seen = [_ids(next(plain)) for _ in range(rounds)]
    it = iter(ds)
    it.set_state(pipeline.train_state_at(4 * rounds, workers))
    got = sorted(sum((_ids(next(it)) for _ in range(max(workers, 1))), []))
    want = sorted(sum((_ids(next(plain)) for _ in range(max(workers, 1))), []))
    if workers:
        it.close()
    assert got == want  # the next elements of the shuffled stream (in worker order), none of `seen` again
    assert not set(got) & set(sum(seen, []))


@pytest.mark.slow
def test_two_processes_then_one_resumes_the_state_and_continues_the_stream(tmp_path):
    uninterrupted = tmp_path / "uninterrupted"
    finish(start_train(uninterrupted, "--config.num_train_steps=6", devices=4))
    workdir = tmp_path / "resumed"
    for proc in start_train_job(workdir, "--config.num_train_steps=4", devices=2):
        finish(proc)
    out = finish(start_train(workdir, "--config.num_train_steps=6", devices=4))
    assert "has no data position for this process count" in out and "Resumed from step 4" in out, out
    want = read_metrics(str(uninterrupted), "train")
    got = read_metrics(str(workdir), "train")
    assert [r["step"] for r in got] == [r["step"] for r in want] == [1, 2, 3, 4, 5, 6]
    # Steps 5 and 6 train on the batches an uninterrupted run trains on: the same losses (up to the split of sums).
    np.testing.assert_allclose([r["loss"] for r in got], [r["loss"] for r in want], rtol=1e-4)
    assert os.path.exists(workdir / "checkpoints" / "6" / "data" / "process_0-of-1.json")
