"""Where training metrics go: `metrics.jsonl` (one JSON object per line, with `step` and `split`), TensorBoard
event files (written by tensorboardX, so TensorFlow is not needed) and a console progress bar.

Only process 0 writes; the others get a writer that does nothing, so callers need no `if`.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Mapping

import tqdm

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"

class MetricWriter:
    """Writes scalar metrics of one run. Use as a context manager or call close()."""

    def __init__(self, workdir: str, total_steps: int, initial_step: int = 0, enabled: bool = True,
                 progress_bar: bool = True):
        self.enabled = enabled
        self._jsonl = None
        self._tb = None
        self._bar = None
        if not enabled:
            return
        os.makedirs(workdir, exist_ok=True)
        self._jsonl = open(os.path.join(workdir, METRICS_FILE), "a", encoding="utf-8")
        from tensorboardX import SummaryWriter  # a heavy import, only on the writing process

        self._tb = SummaryWriter(os.path.join(workdir, TENSORBOARD_DIR))
        if progress_bar:
            self._bar = tqdm.tqdm(total=total_steps, initial=initial_step, unit="step", dynamic_ncols=True,
                                  mininterval=1.0)
        self._last_step = initial_step

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
            self._bar.set_postfix({k: f"{clean[k]:.4g}" for k in ("loss", "accuracy", "clips_per_s")
                                   if isinstance(clean.get(k), float)}, refresh=False)

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

    def __enter__(self) -> "MetricWriter":
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
