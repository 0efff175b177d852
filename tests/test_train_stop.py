"""A stop signal while the trainer waits for its next batch (train_lib._StopFlag, _InterruptibleIterator)."""
import os
import signal
import threading
import time

import numpy as np
import pytest

from vmp_jax import train_lib
from vmp_jax.data import pipeline


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
  stop = train_lib._StopFlag()
  batches = train_lib._InterruptibleIterator(it, stop)
  previous = signal.signal(signal.SIGTERM, stop)
  try:
    # The batch's 4 items are ready 0.4, 0.8, 1.2 and 1.6 s after the call (one read thread): signal at 0.6 s.
    threading.Timer(0.6, os.kill, (os.getpid(), signal.SIGTERM)).start()
    start = time.monotonic()
    with pytest.raises(train_lib.StopRequested):
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
  stop = train_lib._StopFlag()
  it = iter(pipeline.train_dataset(_Slow(), batch_size=4, seed=0))
  batches = train_lib._InterruptibleIterator(it, stop)
  ids = [int(next(batches)["frames"][0, 0, 0, 0, 0]) for _ in range(3)]
  plain = iter(pipeline.train_dataset(_Slow(), batch_size=4, seed=0))
  assert ids == [int(next(plain)["frames"][0, 0, 0, 0, 0]) for _ in range(3)]
  assert batches.get_state() == it.get_state() and stop.signum is None
