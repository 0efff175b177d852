"""The training loop: steps at a cadence, metrics, evaluation and checkpoints, and how a run stops.

`train_loop` knows nothing of models or data: it gets the state, the batches and the step, evaluation and save
functions from `train_lib.train_and_evaluate`. What it guarantees: a stop signal (SIGTERM/SIGINT) saves the last
finished step and returns at a step boundary (at once while a single process waits for data); a non-finite loss or
parameter norm stops the run (`NonFiniteError`) before any checkpoint past it is written; several processes agree
on stopping only at log, eval and checkpoint steps, so no step waits for a collective of the host.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

from vmp_jax import checkpointing, cli
from vmp_jax.metric_writers import MetricWriter

State = TypeVar("State")


class NonFiniteError(cli.RunStopped, FloatingPointError):
    """Training produced a non-finite loss or parameters; the run stopped with its last good checkpoint kept."""


class StopRequested(BaseException):
    """A stop signal arrived while the loop waited for its next batch (raised in `InterruptibleIterator.__next__`).

    A BaseException, like KeyboardInterrupt: the signal handler raises it inside data-loading code, whose
    `except Exception` clauses must not swallow it.
    """


@dataclasses.dataclass
class StopFlag:
    """Set by SIGTERM/SIGINT; the loop saves a checkpoint and returns at the next step boundary.

    While `waiting` (the loop blocked on its next batch: slow storage, a split of unreadable files) a signal also
    raises StopRequested there, so the run stops at once instead of after the batch (see `InterruptibleIterator`).
    """

    signum: int | None = None
    source: int | None = None  # the process whose signal stopped this one, when it received none itself
    waiting: bool = False

    def __call__(self, signum, frame):
        del frame
        self.signum = signum
        if self.waiting:
            self.waiting = False
            raise StopRequested(signum)


class InterruptibleIterator:
    """The train iterator, read `depth` batches ahead by a background thread that also transfers each batch to the
    devices (`transfer`), so the next batches are on their way while the current step runs.

    `get_state()` is the position after the last batch `next` returned (the one the latest step trained on), not
    the reader's: batches read ahead but not trained on are read again after a resume.

    On a single process a stop signal interrupts a `next` that waits for data (StopRequested); with several, every
    process stops at the same step boundary instead (one leaving a step's collectives would hang the others). The
    interrupted reader may be mid-batch: its worker processes are terminated and the iterator closed, not used again.
    The thread is a daemon and `close()` stops it, so it never keeps the process alive.
    """

    def __init__(self, iterator, stop: StopFlag, transfer: Callable[[dict], Any] | None = None, depth: int = 2):
        self.iterator, self.stop = iterator, stop
        self._transfer = transfer or (lambda batch: batch)
        self._position = iterator.get_state()
        self._queue = queue.Queue(maxsize=max(depth - 1, 1))  # and one more in the reader's hand, transferred
        self._closed = threading.Event()
        self._thread = None

    def __iter__(self):
        return self

    def _offer(self, item) -> bool:
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _read(self):
        try:
            while not self._closed.is_set():
                batch = next(self.iterator)
                if not self._offer((self._transfer(batch), self.iterator.get_state())):
                    return
        except BaseException as e:  # StopIteration and errors included: the consumer raises them
            if not self._closed.is_set():
                self._offer((e, None))

    def __next__(self):
        if self._thread is None:
            self._thread = threading.Thread(target=self._read, name="vmp_jax-prefetch", daemon=True)
            self._thread.start()
        if jax.process_count() > 1:
            item = self._queue.get()
        else:
            try:
                self.stop.waiting = True
                try:
                    if self.stop.signum is not None:
                        raise StopRequested(self.stop.signum)
                    item = self._queue.get()
                finally:
                    self.stop.waiting = False
            except StopRequested:
                self._abort()
                raise
        batch, position = item
        if position is None:
            raise batch
        self._position = position
        return batch

    def _abort(self):
        self._closed.set()
        for worker in multiprocessing.active_children():  # grain workers, mid-batch: at exit grain would wait
            worker.terminate()  # up to 25 s for each to finish it
        closing = threading.Thread(target=self.iterator.close, daemon=True)  # cancels the queued reads
        closing.start()
        closing.join(timeout=2.0)  # bounded: closing joins grain's threads, which may wait on a worker

    def close(self):
        """Stops the reader thread (waits a few seconds for a batch it is reading)."""
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def get_state(self):
        return self._position


@dataclasses.dataclass(frozen=True)
class Cadence:
    """When the loop logs train metrics, evaluates (0: only at the end) and checkpoints, in steps."""

    total_steps: int
    log_every: int
    eval_every: int
    checkpoint_every: int

    def eval_at(self, step: int) -> bool:
        return step == self.total_steps or (self.eval_every > 0 and step % self.eval_every == 0)

    def log_at(self, step: int) -> bool:
        return step % self.log_every == 0 or step == self.total_steps

    def checkpoint_at(self, step: int) -> bool:
        return step % self.checkpoint_every == 0 or step == self.total_steps


def train_loop(
    state: State,
    start_step: int,
    cadence: Cadence,
    *,
    batches,
    train_step: Callable[[State, Any], tuple[State, dict]],
    evaluate: Callable[[State, bool], dict[str, dict]],
    save: Callable[..., None],
    checkpoints: checkpointing.Checkpoints,
    writer: MetricWriter,
    stop: StopFlag,
    batch_size: int,
) -> State:
    """Steps from `start_step` to `cadence.total_steps`: `train_step(state, next(batches))`, metrics,
    `evaluate(state, final)` -> {split: scores} ('eval' is what the checkpoint is ranked by) and
    `save(step, state[, eval scores])` at the cadence; a stop signal saves and returns at a step boundary, or
    at once if it comes while `next(batches)` waits for data (StopRequested: that step does not run).

    Nothing waits for a step to finish except the logging (every `log_every` steps) and the non-finite check of
    the step before (the device has the current step queued meanwhile). With several processes the processes agree
    on stopping only at log, eval and checkpoint steps: an agreement is a collective that would make every host
    wait for its step. Train records carry `data_wait_s` (mean seconds per step waiting for the next batch),
    `step_s` (the rest of a step's wall time) and `clips_per_s`, over the steps of the log window (eval and
    checkpoint time excluded).
    """
    pending = None  # (step, metrics) of the step in flight: checked for NaN one step later, without a stall
    window = {"start": time.perf_counter(), "steps": 0, "wait": 0.0, "other": 0.0}
    step = start_step
    several = jax.process_count() > 1

    def check_finite(step_metrics, at_step):
        loss, param_norm = float(step_metrics["loss"]), float(step_metrics["param_norm"])
        if np.isfinite(loss) and np.isfinite(param_norm):
            return
        what = (
            f"non-finite loss ({loss})"
            if not np.isfinite(loss)
            else f"non-finite parameters (parameter norm {param_norm}; the loss was {loss:.6g})"
        )
        last = checkpoints.latest_step()
        kept = (
            f"the last good checkpoint, step {last}, is kept in {checkpoints.directory}"
            if last is not None
            else "no checkpoint was saved before it"
        )
        raise NonFiniteError(
            f"{what} at step {at_step}; training stopped and {kept}. Rerunning the same command "
            "stops the same way: lower config.schedule.base_lr or set config.optimizer.clip_grad_norm"
        )

    def stop_here():
        saved = "checkpoint saved"
        if step == start_step:  # no step finished in this run: its checkpoint (or a fresh start) is this state
            saved = "no step since the start, nothing saved"
        elif checkpoints.latest_step() != step:
            check_finite(*pending)
            save(step, state)
        checkpoints.wait()
        writer.message(f"Stopped by {_signal_text(stop)} at step {step}; {saved}. Rerun the same command to resume.")
        logging.warning("Stopped by %s at step %d", _signal_text(stop), step)
        return state

    while step < cadence.total_steps:
        waited = time.perf_counter()
        try:
            batch = next(batches)
        except StopRequested:  # signalled while waiting for the batch: this step did not run
            return stop_here()
        window["wait"] += time.perf_counter() - waited
        state, metrics = train_step(state, batch)
        if pending is not None:
            check_finite(*pending)
        step += 1
        pending = (metrics, step)
        window["steps"] += 1
        writer.advance(step)

        if cadence.log_at(step):
            check_finite(*pending)
            host = {k: float(v) for k, v in jax.device_get(metrics).items()}
            busy = time.perf_counter() - window["start"] - window["other"]
            host["data_wait_s"] = window["wait"] / window["steps"]
            host["step_s"] = (busy - window["wait"]) / window["steps"]
            host["clips_per_s"] = window["steps"] * batch_size / busy
            writer.write(step, "train", host)
            window = {"start": time.perf_counter(), "steps": 0, "wait": 0.0, "other": 0.0}

        other = time.perf_counter()
        if cadence.eval_at(step):
            check_finite(*pending)
            splits = evaluate(state, step == cadence.total_steps)
            for split, results in splits.items():
                writer.write(step, split, results)
                writer.message(f"step {step}: {split} " + ", ".join(f"{k}={v:.4f}" for k, v in results.items()))
            save(step, state, splits["eval"])
        elif cadence.checkpoint_at(step):
            check_finite(*pending)
            save(step, state)
        window["other"] += time.perf_counter() - other

        boundary = cadence.log_at(step) or cadence.eval_at(step) or cadence.checkpoint_at(step)
        if (boundary or not several) and _should_stop(stop):
            return stop_here()
    if pending is not None:
        check_finite(*pending)
    checkpoints.wait()
    return state


def _should_stop(stop: StopFlag) -> bool:
    """Every process stops at the same step: any process's signal stops all of them (the first one that got a
    signal is recorded in `stop.source`)."""
    if jax.process_count() == 1:
        return stop.signum is not None
    signums = np.asarray(multihost_utils.process_allgather(np.asarray(-1 if stop.signum is None else stop.signum)))
    received = np.flatnonzero(signums >= 0)
    if received.size and stop.signum is None:
        stop.source = int(received[0])
    return bool(received.size)


def _signal_text(stop: StopFlag) -> str:
    if stop.signum is not None:
        return f"signal {stop.signum}"
    return f"a signal to process {stop.source}"
