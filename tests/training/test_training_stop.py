"""A stop signal while the trainer waits for its next batch (loop.StopFlag, InterruptibleIterator)."""

import datetime
import os
import signal
import threading
import time

import loop_fakes
import numpy as np
import pytest

from vmp_jax.data import pipeline
from vmp_jax.training import loop


class _Slow:
    """Items whose frames encode their index, each taking 0.4 s to transform: a slow data stream."""

    def __len__(self):
        return 16

    def __getitem__(self, i):
        return {"frames": np.full((2, 4, 4, 3), i, np.uint8), "label": np.int32(0)}


def _slow(item, rng):
    del rng
    time.sleep(0.4)
    return item


def test_signal_mid_batch_stops_at_once_and_checkpoints_the_position_before_it():
    ds = pipeline.train_dataset(_Slow(), batch_size=4, seed=0, transform=_slow, read_threads=1)
    it = iter(ds)
    next(it)
    position = it.get_state()
    stop = loop.StopFlag()
    batches = loop.InterruptibleIterator(it, stop)
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        # The batch's 4 items are ready 0.4, 0.8, 1.2 and 1.6 s after the call (one read thread): signal at 0.6 s.
        threading.Timer(0.6, os.kill, (os.getpid(), signal.SIGTERM)).start()
        start = time.monotonic()
        with pytest.raises(loop.StopRequested):
            next(batches)
        assert time.monotonic() - start < 1.2
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert stop.signum == signal.SIGTERM and not stop.waiting
    assert it.get_state() != position  # the interrupted next() consumed part of the batch ...
    assert batches.get_state() == position  # ... but a checkpoint gets the position before it
    fresh, want = iter(ds), iter(ds)
    next(want)
    fresh.set_state(batches.get_state())
    np.testing.assert_array_equal(next(fresh)["frames"], next(want)["frames"])


def test_no_signal_no_change():
    stop = loop.StopFlag()
    it = iter(pipeline.train_dataset(_Slow(), batch_size=4, seed=0))
    batches = loop.InterruptibleIterator(it, stop)
    ids = [int(next(batches)["frames"][0, 0, 0, 0, 0]) for _ in range(3)]
    plain = iter(pipeline.train_dataset(_Slow(), batch_size=4, seed=0))
    assert ids == [int(next(plain)["frames"][0, 0, 0, 0, 0]) for _ in range(3)]
    # The position is that of the last batch returned, not the reader's (which is ahead of it).
    assert batches.get_state() == plain.get_state() and stop.signum is None
    batches.close()


def test_next_batches_are_read_and_transferred_while_the_current_one_is_used():
    it = iter(pipeline.train_dataset(_Slow(), batch_size=1, seed=0, transform=_slow, read_threads=1))
    transferred = []
    batches = loop.InterruptibleIterator(it, loop.StopFlag(), transfer=lambda b: transferred.append(b) or b, depth=2)
    first = next(batches)
    position = batches.get_state()
    time.sleep(1.5)  # the step on `first`: meanwhile the reader takes 2 more batches (0.4 s each) and stops, 2 deep
    assert len(transferred) == 3
    assert batches.get_state() == position  # a checkpoint now resumes after `first`, re-reading the prefetched two
    start = time.monotonic()
    second = next(batches)
    assert time.monotonic() - start < 0.2  # already there
    plain = iter(pipeline.train_dataset(_Slow(), batch_size=1, seed=0))
    for got in (first, second):
        np.testing.assert_array_equal(got["frames"], next(plain)["frames"])
    assert batches.get_state() == plain.get_state()
    batches.close()
    assert not batches._thread.is_alive()


def test_several_processes_agree_on_stopping_only_at_log_and_checkpoint_steps(monkeypatch):
    # No preemption sync manager here (jax.distributed does not run): the processes agree by gathering their
    # signals, at log and checkpoint steps only.
    gathers = []

    def allgather(x, tiled=False):
        gathers.append(len(gathers))
        return np.asarray([int(x), -1])

    monkeypatch.setattr(loop.jax, "process_count", lambda: 2)
    monkeypatch.setattr(loop.multihost_utils, "process_allgather", allgather)
    saved = []
    cadence = loop.Cadence(total_steps=12, log_every=4, eval_every=0, checkpoint_every=6)
    metrics = {"loss": np.float32(1.0), "param_norm": np.float32(1.0)}
    loop.train_loop(
        0,
        0,
        cadence,
        batches=iter(range(100)),
        train_step=lambda s, b: (s + 1, metrics),
        evaluate=lambda s, final: {"eval": {"top1": 0.0}},
        save=lambda step, s, m=None: saved.append(step),
        checkpoints=loop_fakes.Checkpoints(saved),
        writer=loop_fakes.Writer(),
        stop=loop.StopFlag(),
        batch_size=1,
    )
    # Steps 4, 6, 8 and 12 (log or checkpoint; 12 is the last): one agreement each, none on the 8 other steps.
    assert len(gathers) == 4 and saved == [6, 12]


class _FakeClient:
    """The distributed runtime client's key-value store, as far as the stop agreement uses it."""

    def __init__(self, store=None):
        self.store = dict(store or {})

    def key_value_set(self, key, value, allow_overwrite=False):
        if key in self.store and not allow_overwrite:
            raise RuntimeError(f"ALREADY_EXISTS: {key}")
        self.store[key] = value

    def key_value_dir_get(self, prefix):
        return [(k, v) for k, v in self.store.items() if k.startswith(prefix)]


def _stop_at_sync_point(monkeypatch, client, signal_at=None, sync_at=None):
    """train_loop over 12 steps (log every 4, checkpoint every 6) as one of 2 processes with a preemption sync
    manager: `sync_at` is the step at which reached_preemption_sync_point says yes (None: once the notice is
    published, 2 steps later), `signal_at` the step during which this process gets SIGTERM."""
    gathers, asked, saved, messages = [], [], [], []
    published = []

    def reached(step):
        asked.append(step)
        if loop.PREEMPTION_NOTICE_KEY in client.store and not published:
            published.append(step)
        return step == (sync_at if sync_at is not None else (published[0] + 2 if published else None))

    monkeypatch.setattr(loop.jax, "process_count", lambda: 2)
    monkeypatch.setattr(loop, "_sync_manager_client", lambda: client)
    monkeypatch.setattr(loop.multihost_utils, "reached_preemption_sync_point", reached)
    monkeypatch.setattr(
        loop.multihost_utils, "process_allgather", lambda x, tiled=False: gathers.append(x) or [int(x), -1]
    )
    stop = loop.StopFlag()

    def train_step(state, batch):
        if state + 1 == signal_at:
            stop(signal.SIGTERM, None)
        return state + 1, {"loss": np.float32(1.0), "param_norm": np.float32(1.0)}

    final = loop.train_loop(
        0,
        0,
        loop.Cadence(total_steps=12, log_every=4, eval_every=0, checkpoint_every=6),
        batches=iter(range(100)),
        train_step=train_step,
        evaluate=lambda s, final: {"eval": {"top1": 0.0}},
        save=lambda step, s, m=None: saved.append(step),
        checkpoints=loop_fakes.Checkpoints(saved),
        writer=loop_fakes.Writer(messages),
        stop=stop,
        batch_size=1,
    )
    return final, asked, gathers, saved, messages


def test_the_signalled_process_publishes_a_preemption_notice_and_stops_at_the_sync_point(monkeypatch):
    client = _FakeClient()
    final, asked, gathers, saved, messages = _stop_at_sync_point(monkeypatch, client, signal_at=1)
    # Signalled during step 1: the notice is published after it, and the sync point (step 3, no log or checkpoint
    # step) stops the run, without waiting for the log step 4 and with no collective on steps 1 to 3.
    assert client.store == {"vmp_jax/stop_signal/0": str(int(signal.SIGTERM)), "RECEIVED_PREEMPTION_NOTICE": ANY_TIME}
    assert final == 3 and saved == [3] and asked == [1, 2, 3] and gathers == []
    assert messages == [
        f"Stopped by signal {int(signal.SIGTERM)} at step 3; checkpoint saved. Rerun the same command to resume."
    ]


def test_a_process_stopped_by_another_ones_notice_names_it(monkeypatch):
    notice = {"vmp_jax/stop_signal/1": "15", "RECEIVED_PREEMPTION_NOTICE": "2026-01-01T00:00:00+00:00"}
    client = _FakeClient(notice)
    final, asked, gathers, saved, messages = _stop_at_sync_point(monkeypatch, client, sync_at=5)
    assert final == 5 and saved == [5] and asked == [1, 2, 3, 4, 5] and len(gathers) == 1  # the log step 4's
    assert client.store == notice  # nothing published: this process got no signal
    assert messages[0].startswith("Stopped by a signal to process 1 at step 5;")


def test_the_log_step_agreement_still_stops_the_run_when_no_sync_point_comes(monkeypatch):
    # The notice is published but the sync point never comes (a sync manager that never learns of it): the signal
    # gathered at the next log step stops every process there.
    final, asked, gathers, saved, messages = _stop_at_sync_point(monkeypatch, _FakeClient(), signal_at=2, sync_at=-1)
    assert final == 4 and saved == [4] and asked == [1, 2, 3, 4] and len(gathers) == 1


class _AnyTime(str):
    def __eq__(self, other):
        return datetime.datetime.fromisoformat(other).tzinfo is not None

    __hash__ = str.__hash__


ANY_TIME = _AnyTime()


def test_evaluations_during_training_and_the_final_test(monkeypatch):
    saved, written, finals = [], [], []

    def evaluate(state, final):
        finals.append(final)
        return {"eval": {"top1": 0.5}, **({"test": {"top1": 0.75}} if final else {})}

    cadence = loop.Cadence(total_steps=6, log_every=6, eval_every=3, checkpoint_every=6)
    metrics = {"loss": np.float32(1.0), "param_norm": np.float32(1.0)}
    loop.train_loop(
        0,
        0,
        cadence,
        batches=iter(range(100)),
        train_step=lambda s, b: (s + 1, metrics),
        evaluate=evaluate,
        save=lambda step, s, m=None: saved.append((step, m)),
        checkpoints=loop_fakes.Checkpoints(saved, step_of=lambda entry: entry[0]),
        writer=loop_fakes.Writer(records=written),
        stop=loop.StopFlag(),
        batch_size=1,
    )
    assert finals == [False, True]
    assert written == [(3, "eval"), (6, "train"), (6, "eval"), (6, "test")]
    # keep_best ranks every checkpoint by the same (during-training) eval, the last one included.
    assert saved == [(3, {"top1": 0.5}), (6, {"top1": 0.5})]


def test_the_reader_thread_does_not_keep_the_process_alive():
    import subprocess
    import sys

    # grain's own read-ahead (2 elements here) is still read at exit; the reader thread adds no wait to it.
    code = (
        "import numpy as np\n"
        "from vmp_jax.training import loop\nfrom vmp_jax.data import pipeline\n"
        "from tests.training.test_training_stop import _Slow, _slow\n"
        "it = iter(pipeline.train_dataset(_Slow(), batch_size=2, seed=0, transform=_slow, read_threads=1, "
        "read_buffer_size=2))\n"
        "batches = loop.InterruptibleIterator(it, loop.StopFlag())\n"
        "next(batches)\nprint('exiting', flush=True)\n"
    )  # no close(): the reader is mid-batch at exit
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(
            os.environ, PYTHONPATH=os.pathsep.join([root, os.path.join(root, "tests", "support")])
        ),  # + loop_fakes
    )
    assert proc.stdout.readline().strip() == "exiting"
    start = time.monotonic()
    assert proc.wait(timeout=60) == 0, proc.stderr.read()[-2000:]
    assert time.monotonic() - start < 8
