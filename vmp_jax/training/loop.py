"""The training loop: steps at a cadence, metrics, evaluation and checkpoints, and how a run stops.

`train_loop` knows nothing of models or data: it gets the state, the batches and the step, evaluation and save
functions from `vmp_jax.training.run.train_and_evaluate`. What it guarantees: a stop signal (SIGTERM/SIGINT) saves
the last finished step and returns at a step boundary (at once while a single process waits for data); a non-finite
loss or parameter norm stops the run (`NonFiniteError`) before any checkpoint past it is written. Several processes
stop at the same step whichever of them got the signal, and no step waits for a collective of the host to agree on
it: where JAX's preemption sync manager runs (`jax.distributed`), the signalled process publishes a preemption
notice and every process stops at the step `multihost_utils.reached_preemption_sync_point` names (any step, usually
a step or two after the signal); in any case the processes also gather their signals at log, eval and checkpoint
steps.
"""

from __future__ import annotations

import dataclasses
import datetime
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

from vmp_jax import cli
from vmp_jax.training import checkpointing
from vmp_jax.training.metric_writers import MetricWriter

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
    published: bool = False  # the signal was published as a preemption notice (several processes)

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
    the step before (the device has the current step queued meanwhile). With several processes every process stops
    at the same step (`_should_stop`), and no step waits for a collective to agree on it: at the sync point of
    JAX's preemption sync manager where it runs (usually a step or two after the signal), else (or if one comes
    first) at the next log, eval or checkpoint step, where the processes gather their signals. Train records carry
    `data_wait_s` (mean seconds per step waiting for the next batch), `step_s` (the rest of a step's wall time)
    and `clips_per_s`, over the steps of the log window (eval and checkpoint time excluded).
    """
    pending = None  # (metrics, step) of the step in flight: checked for NaN one step later, without a stall
    window = _LogWindow()
    step = start_step

    def stop_here():
        saved = "checkpoint saved"
        if step == start_step:  # no step finished in this run: its checkpoint (or a fresh start) is this state
            saved = "no step since the start, nothing saved"
        elif checkpoints.latest_step() != step:
            _check_finite(*pending, checkpoints)
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
        window.wait += time.perf_counter() - waited
        state, metrics = train_step(state, batch)
        if pending is not None:
            _check_finite(*pending, checkpoints)
        step += 1
        pending = (metrics, step)
        window.steps += 1
        writer.advance(step)

        if cadence.log_at(step):
            _check_finite(*pending, checkpoints)
            writer.write(step, "train", window.row(metrics, batch_size))
            window = _LogWindow()
        other = time.perf_counter()
        if cadence.eval_at(step) or cadence.checkpoint_at(step):
            _check_finite(*pending, checkpoints)
            _evaluate_and_save(step, state, cadence, evaluate, save, writer)
        window.other += time.perf_counter() - other

        boundary = cadence.log_at(step) or cadence.eval_at(step) or cadence.checkpoint_at(step)
        if _should_stop(stop, step, boundary):
            return stop_here()
    if pending is not None:
        _check_finite(*pending, checkpoints)
    checkpoints.wait()
    return state


@dataclasses.dataclass
class _LogWindow:
    """The wall time of the steps since the last train record: waiting for data, and evaluating or saving."""

    start: float = dataclasses.field(default_factory=time.perf_counter)
    steps: int = 0
    wait: float = 0.0
    other: float = 0.0

    def row(self, metrics: dict, batch_size: int) -> dict:
        """The train record of the window's last step (waits for it): its metrics and the window's timings."""
        host = {k: float(v) for k, v in jax.device_get(metrics).items()}
        busy = time.perf_counter() - self.start - self.other
        host["data_wait_s"] = self.wait / self.steps
        host["step_s"] = (busy - self.wait) / self.steps
        host["clips_per_s"] = self.steps * batch_size / busy
        return host


def _check_finite(step_metrics: dict, at_step: int, checkpoints: checkpointing.Checkpoints) -> None:
    """NonFiniteError naming the step and the last good checkpoint when the loss or the parameters are not finite."""
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


def _evaluate_and_save(step: int, state, cadence: Cadence, evaluate, save, writer: MetricWriter) -> None:
    """At an eval step: evaluate, record, and save ranked by the 'eval' scores; at a checkpoint step: save."""
    if not cadence.eval_at(step):
        save(step, state)
        return
    splits = evaluate(state, step == cadence.total_steps)
    for split, results in splits.items():
        writer.write(step, split, results)
        writer.message(f"step {step}: {split} " + ", ".join(f"{k}={v:.4f}" for k, v in results.items()))
    save(step, state, splits["eval"])


# The key under which a process's preemption notifier tells the others of a preemption (tsl's
# preemption_sync_manager.cc, kPreemptionNoticeKey): every process's sync manager watches it and, once it is set,
# agrees with the others on the first step that none has reached yet as the sync point.
PREEMPTION_NOTICE_KEY = "RECEIVED_PREEMPTION_NOTICE"
_SIGNAL_KEYS = "vmp_jax/stop_signal/"  # + process index -> the signal number that process received


def _sync_manager_client():
    """The distributed runtime client where JAX's preemption sync manager runs (None where it does not)."""
    from jax._src import distributed  # where orbax also reads the client from

    state = distributed.global_state
    return state.client if state.client is not None and state.preemption_sync_manager is not None else None


def _should_stop(stop: StopFlag, step: int, boundary: bool) -> bool:
    """Whether to stop after `step` (`boundary`: a log, eval or checkpoint step). Called after every step.

    A single process stops after the step during which the signal came. Several stop at the same step, whichever
    received the signal (those that received none record the lowest-numbered process that did in `stop.source`):

    - Where JAX's preemption sync manager runs, every process asks `reached_preemption_sync_point(step)` after every
      step (a lock, no collective). The manager's own SIGTERM notifier cannot see the signal (its C handler, set by
      `jax.distributed.initialize`, is replaced by this run's Python one), so the signalled process publishes the
      notice the notifier would publish; every manager then agrees with the others on the first step no process
      has reached as the sync point.
    - At log, eval and checkpoint steps the processes also gather their signals (a collective): the agreement
      where there is no sync manager, and whichever comes first otherwise (both name the same step everywhere).
    """
    if jax.process_count() == 1:
        return stop.signum is not None
    client = _sync_manager_client()
    if client is not None:
        if stop.signum is not None and not stop.published:
            _publish(client, stop)
        if multihost_utils.reached_preemption_sync_point(step):
            if stop.signum is None:
                received = sorted(int(key.rsplit("/", 1)[1]) for key, _ in client.key_value_dir_get(_SIGNAL_KEYS))
                stop.source = received[0] if received else None
            return True
    if not boundary:
        return False
    signums = np.asarray(multihost_utils.process_allgather(np.asarray(-1 if stop.signum is None else stop.signum)))
    received = np.flatnonzero(signums >= 0)
    if received.size and stop.signum is None:
        stop.source = int(received[0])
    return bool(received.size)


def _publish(client, stop: StopFlag) -> None:
    """Publishes this process's signal as the preemption notice of JAX's sync managers (once; the first notice of
    the job is the one that counts, so a later one, another process's or JAX's own, is ignored)."""
    stop.published = True
    client.key_value_set(f"{_SIGNAL_KEYS}{jax.process_index()}", str(stop.signum))  # before the notice: it names
    now = datetime.datetime.now(datetime.UTC).isoformat()  # the death time, RFC 3339: the protocol starts at once
    try:
        client.key_value_set(PREEMPTION_NOTICE_KEY, now)
    except Exception as e:  # noqa: BLE001  (the key exists: another process, or JAX's notifier, published first)
        logging.info("preemption notice already published: %s", e)


def _signal_text(stop: StopFlag) -> str:
    if stop.signum is not None:
        return f"signal {stop.signum}"
    if stop.source is None:  # a preemption notice that no process's signal handler published (JAX's own notifier)
        return "a preemption notice to another process"
    return f"a signal to process {stop.source}"
