"""Where training metrics go: `metrics.jsonl` (one JSON object per line, with `step` and `split`), TensorBoard
event files (written by tensorboardX, so TensorFlow is not needed) and a console progress bar.

Only process 0 writes; the others get a writer that does nothing, so callers need no `if`.

A writer that starts at `initial_step` (a resumed run) first removes the records past that step, which a run killed
after its last checkpoint had written, so that the files describe exactly the steps of the restored state: a run
killed and resumed leaves the same `metrics.jsonl` as an uninterrupted one, apart from timings.
"""

from __future__ import annotations

import json
import math
import os
import struct
import time
from collections.abc import Iterator, Mapping

import tqdm

from vmp_jax.training.run_dir import METRICS_FILE, TENSORBOARD_DIR


class MetricWriter:
    """Writes scalar metrics of one run. Use as a context manager or call close()."""

    def __init__(
        self, workdir: str, total_steps: int, initial_step: int = 0, enabled: bool = True, progress_bar: bool = True
    ):
        self.enabled = enabled
        self._jsonl = None
        self._tb = None
        self._bar = None
        if not enabled:
            return
        os.makedirs(workdir, exist_ok=True)
        removed = rewind(workdir, initial_step)
        self._jsonl = open(os.path.join(workdir, METRICS_FILE), "a", encoding="utf-8")
        from tensorboardX import SummaryWriter  # a heavy import, only on the writing process

        # The purge event makes a TensorBoard that already read the removed records forget them too. tensorboardX
        # names the file by the second it was opened in, and would overwrite an earlier writer's file of that second.
        self._tb = SummaryWriter(
            os.path.join(workdir, TENSORBOARD_DIR), purge_step=initial_step + 1, filename_suffix=f".{time.time_ns()}"
        )
        if progress_bar:
            self._bar = tqdm.tqdm(
                total=total_steps, initial=initial_step, unit="step", dynamic_ncols=True, mininterval=1.0
            )
        self._last_step = initial_step
        if removed:
            self.message(
                f"Removed {removed} metric records past step {initial_step} from {workdir} (written after "
                "the checkpoint this run resumes from)."
            )

    def write(self, step: int, split: str, metrics: Mapping[str, float]) -> None:
        """Record `metrics` (name -> number) for `split` ('train', 'eval', ...) at `step`."""
        if not self.enabled:
            return
        clean = {k: _finite_or_str(float(v)) for k, v in metrics.items()}
        self._jsonl.write(json.dumps({"step": int(step), "split": split, "time": time.time(), **clean}) + "\n")
        self._jsonl.flush()
        for name, value in clean.items():
            if isinstance(value, float):
                self._tb.add_scalar(f"{split}/{name}", value, int(step))
        self._tb.flush()
        if self._bar is not None and split == "train":
            self._bar.set_postfix(
                {k: f"{clean[k]:.4g}" for k in ("loss", "accuracy", "clips_per_s") if isinstance(clean.get(k), float)},
                refresh=False,
            )

    def advance(self, step: int) -> None:
        """Move the progress bar to `step`."""
        if self._bar is not None and step > self._last_step:
            self._bar.update(step - self._last_step)
            self._last_step = step

    def message(self, text: str) -> None:
        """Print a line without breaking the progress bar."""
        if self.enabled:
            (self._bar.write if self._bar is not None else print)(text)

    def close(self) -> None:
        for handle in (self._bar, self._tb, self._jsonl):
            if handle is not None:
                handle.close()
        self._bar = self._tb = self._jsonl = None

    def __enter__(self) -> MetricWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _finite_or_str(value: float) -> float | str:
    """JSON has no NaN/inf: keep them readable as strings."""
    return value if math.isfinite(value) else str(value)


def read_metrics(workdir: str, split: str | None = None) -> list[dict]:
    """The records of `workdir/metrics.jsonl`, optionally of one split."""
    path = os.path.join(workdir, METRICS_FILE)
    with open(path, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    return [r for r in records if split is None or r["split"] == split]


def rewind(workdir: str, step: int) -> int:
    """Removes the records past `step` from `workdir`'s metrics.jsonl and TensorBoard event files, and any torn last
    record of a killed writer; returns how many were removed. Files are rewritten only if they change, each through a
    temporary file and a rename."""
    removed = 0
    path = os.path.join(workdir, METRICS_FILE)
    if os.path.exists(path):
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
        kept = [line for line in lines if _jsonl_step(line) is not None and _jsonl_step(line) <= step]
        if len(kept) != len(lines):
            _replace(path, "".join(kept).encode())
            removed += len(lines) - len(kept)
    tensorboard = os.path.join(workdir, TENSORBOARD_DIR)
    for name in sorted(os.listdir(tensorboard)) if os.path.isdir(tensorboard) else []:
        if name.startswith("events.out.tfevents"):
            removed += _rewind_event_file(os.path.join(tensorboard, name), step)
    return removed


def _jsonl_step(line: str) -> int | None:
    """The step of a metrics.jsonl line; None for a line that is not a whole record (a write cut short)."""
    if not line.endswith("\n"):
        return None
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


def _replace(path: str, content: bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(content)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _event_records(path: str) -> Iterator[tuple[bytes, bytes]]:
    """(whole record, payload) of each complete TFRecord in `path`: length (8 bytes), its CRC (4), payload, CRC (4)."""
    with open(path, "rb") as f:
        data = f.read()
    position = 0
    while position + 12 <= len(data):
        (length,) = struct.unpack("<Q", data[position : position + 8])
        end = position + 12 + length + 4
        if end > len(data):
            return
        yield data[position:end], data[position + 12 : position + 12 + length]
        position = end


def _rewind_event_file(path: str, step: int) -> int:
    from google.protobuf.message import DecodeError
    from tensorboardX.proto import event_pb2

    size = os.path.getsize(path)
    records = list(_event_records(path))
    kept = []
    for record, payload in records:
        try:
            event = event_pb2.Event.FromString(payload)
        except DecodeError:  # a record cut short inside
            continue
        if event.step <= step or event.WhichOneof("what") == "file_version":
            kept.append(record)
    torn = sum(len(record) for record, _ in records) < size
    if len(kept) == len(records) and not torn:
        return 0
    _replace(path, b"".join(kept))
    return len(records) - len(kept) + int(torn)


def read_tensorboard_scalars(workdir: str) -> list[tuple[str, int, float]]:
    """(tag, step, value) of every scalar in `workdir/tensorboard`'s event files, in the order written."""
    from tensorboardX.proto import event_pb2

    directory = os.path.join(workdir, TENSORBOARD_DIR)
    scalars = []
    for name in sorted(os.listdir(directory)):
        if name.startswith("events.out.tfevents"):
            for _, payload in _event_records(os.path.join(directory, name)):
                event = event_pb2.Event.FromString(payload)
                scalars.extend((value.tag, event.step, value.simple_value) for value in event.summary.value)
    return scalars
