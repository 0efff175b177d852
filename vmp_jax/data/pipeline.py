"""grain pipelines from a random-access source to batches: infinite shuffled training, one padded eval pass.

A source has `__len__` and `__getitem__(i) -> dict`. A transform is `transform(item, rng) -> dict | None`
(decode/augment; `rng` is a numpy Generator seeded by (seed, global element index), so every element is
reproducible and a resumed iterator sees the same augmentation). A transform returns None for an item it skipped
under the skip policy; training drops it (and logs the count per epoch), evaluation keeps its slot with mask=False.
A split none of whose items can be read raises `UnreadableSplitError` instead of skipping forever.

Frames stay uint8; the trainer applies `transforms.standardize` on device.
"""

from __future__ import annotations

import collections
import math
import threading
from collections.abc import Callable
from typing import Any

import grain
import numpy as np
from absl import flags, logging

Transform = Callable[[dict, np.random.Generator], "dict | None"]
_TRAIN_KEYS = ("frames", "label")
_EVAL_KEYS = ("frames", "label", "video_index")
_READ_AHEAD = 1024


class UnreadableSplitError(ValueError):
    """Every item of a split was skipped: there is nothing to train or evaluate on; the message names the source."""


class _Numbered:
    """source[i] -> (i, source[i]): the training map learns which item it got after the shuffle."""

    def __init__(self, source):
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> tuple[int, Any]:
        return int(index), self.source[index]


def _check_shard(shard_index: int, shard_count: int, num_items: int) -> None:
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"shard_index={shard_index} must be in [0, shard_count={shard_count})")
    if num_items < shard_count:
        raise ValueError(f"source has {num_items} items, fewer than shard_count={shard_count}")


def _select(item: dict, keys: tuple[str, ...], clips: int = 1) -> dict:
    """The `keys` of an item, checked: frames uint8 (T, H, W, 3), or (clips, T, H, W, 3) for clips > 1."""
    out = {}
    for k in keys:
        if k not in item:
            raise ValueError(f"data item lacks key {k!r}; it has {sorted(item)}")
        out[k] = item[k]
    out["frames"] = frames = np.asarray(out["frames"])
    lead = () if clips == 1 else (clips,)
    if frames.dtype != np.uint8 or frames.ndim != 4 + len(lead) or frames.shape[: len(lead)] != lead:
        expected = "(T, H, W, 3)" if clips == 1 else f"({clips} clips, T, H, W, 3)"
        raise ValueError(f"item frames must be uint8 {expected}; got {frames.dtype} {frames.shape}")
    for k in keys[1:]:
        out[k] = np.int32(out[k])
    return out


class _TrainMap:
    """Applies the transform with a per-element rng; counts skipped (None) items per epoch and logs each epoch.

    grain calls this from several read-ahead threads, out of order, so counts are kept per epoch under a lock and
    an epoch is logged once all its items were seen here (or, in a worker that sees only part of each epoch, once
    the stream is _READ_AHEAD items past its end, beyond any read-ahead).
    Until one item transforms, the distinct source items skipped here are kept: once they are all `epoch_len` of
    them, no item of the split is readable and this raises `UnreadableSplitError` (naming `source_name`) instead
    of skipping forever. A split with any readable item never gets there, however many of its items are bad; a
    worker that sees part of each epoch gets there after a few epochs (each reshuffles which items it sees).
    The counts live in each process (and grain worker) and restart with it; they are not part of the iterator state.
    """

    def __init__(
        self,
        transform: Transform | None,
        seed: int,
        epoch_len: int,
        source_name: str = "train source",
        clips_per_item: int = 1,
    ):
        self.transform, self.seed, self.epoch_len, self.source_name = transform, seed, epoch_len, source_name
        self.clips_per_item = clips_per_item
        self._seen: dict[int, int] = collections.Counter()
        self._skipped: dict[int, int] = collections.Counter()
        self._any_read = False
        self._unread: set[int] = set()  # distinct source items skipped while none was read
        self._attempts = 0
        self._lock = threading.Lock()

    def __getstate__(self):  # picklable for mp_prefetch workers (locks are not)
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state):
        self.__dict__.update(state, _lock=threading.Lock())

    def _check_readable(self, source_index: int, skipped: bool) -> None:
        if self._any_read:
            return
        if not skipped:
            self._any_read, self._unread = True, set()
            return
        self._attempts += 1
        self._unread.add(source_index)
        if len(self._unread) == self.epoch_len:
            stats = dict(getattr(self.transform, "stats", {}))
            raise UnreadableSplitError(
                f"train data: no item of {self.source_name} could be read: all {self.epoch_len} items were tried and "
                f"skipped ({self._attempts} attempts in this process, none readable; counts: {stats}). Fix or replace "
                "the files it lists (`python -m vmp_jax.data.check_videos` finds the bad ones)."
            )

    def _count(self, index: int, source_index: int, skipped: bool) -> None:
        epoch = index // self.epoch_len
        with self._lock:
            self._check_readable(source_index, skipped)
            self._seen[epoch] += 1
            self._skipped[epoch] += skipped
            done = [
                e
                for e in self._seen
                if self._seen[e] == self.epoch_len or index >= (e + 1) * self.epoch_len + _READ_AHEAD
            ]
            for e in sorted(done):
                seen, n_skipped = self._seen.pop(e), self._skipped.pop(e)
                stats = dict(getattr(self.transform, "stats", {}))
                if n_skipped or stats:
                    logging.warning(
                        "train data: epoch %d: %d of %d items seen in this process skipped; counts so far: %s",
                        e,
                        n_skipped,
                        seen,
                        stats,
                    )

    def __call__(self, index: int, numbered: tuple[int, dict]) -> dict | None:
        source_index, item = numbered
        if self.transform is not None:
            item = self.transform(item, np.random.default_rng([self.seed, index]))
        self._count(index, source_index, item is None)
        return None if item is None else _select(item, _TRAIN_KEYS, self.clips_per_item)


def _unstack_clips(batch: dict) -> dict:
    """A batch of items with K clips each -> a batch of K times as many clips (an item's clips adjacent)."""
    frames = batch["frames"]
    k = frames.shape[1]
    return {"frames": frames.reshape(-1, *frames.shape[2:]), "label": np.repeat(batch["label"], k)}


def train_dataset(
    source,
    *,
    batch_size: int,
    seed: int,
    transform: Transform | None = None,
    shard_index: int = 0,
    shard_count: int = 1,
    num_workers: int = 0,
    per_worker_buffer_size: int = 2,
    read_threads: int = 2,
    read_buffer_size: int = 64,
    clips_per_item: int = 1,
) -> grain.IterDataset:
    """Infinite training stream: seeded shuffle per epoch -> repeat -> transform -> shard -> batch -> prefetch.

    Yields {'frames': uint8 (batch_size, T+1, H, W, 3), 'label': int32 (batch_size,)}; batch_size is per process.
    The shuffled stream is global and each process takes every shard_count-th element of it (use
    jax.process_index()/process_count()), so the union of the processes' batches (the global batch) and each
    element's augmentation are the same whatever the process count. `iter(ds).get_state()/set_state()` resume the
    stream exactly. num_workers>0 decodes in that many processes (grain mp_prefetch); the batch order then depends
    on num_workers, so resume with the same value.
    read_threads / read_buffer_size: threads and elements of grain's read-ahead in each process (grain's
    defaults, 16 and 500, oversubscribe small hosts: 2 threads were 1.7x faster than 16 on 2 cores).
    clips_per_item=K: the transform returns K clips of each item (frames (K, T, H, W, 3): several clips of one
    video); a batch then holds batch_size / K items, K clips each. An element of the stream (and of
    `train_state_at`) is still one item.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}; expected >= 1")
    if clips_per_item < 1 or batch_size % clips_per_item:
        raise ValueError(
            f"batch_size={batch_size} per process is not a multiple of clips_per_item={clips_per_item}: "
            "each item gives that many clips to one batch"
        )
    items_per_batch = batch_size // clips_per_item
    _check_shard(shard_index, shard_count, len(source))
    if len(source) // shard_count < items_per_batch:
        raise ValueError(
            f"{len(source)} items over {shard_count} processes are fewer than the {items_per_batch} a batch of "
            f"batch_size={batch_size} per process takes"
        )
    ds = grain.MapDataset.source(_Numbered(source)).seed(seed).shuffle().repeat()
    train_map = _TrainMap(transform, seed, len(source), repr(source), clips_per_item)
    ds = ds.map_with_index(train_map)[shard_index::shard_count]
    read_options = grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=read_buffer_size)
    it = ds.to_iter_dataset(read_options).batch(items_per_batch, drop_remainder=True)
    if clips_per_item > 1:
        it = it.map(_unstack_clips)
    if num_workers > 0:
        it = _mp_prefetch(it, num_workers, per_worker_buffer_size)
    return it


def train_state_at(elements: int, num_workers: int = 0) -> dict:
    """The `get_state()` of a `train_dataset` iterator (of this `num_workers`) that has yielded the first `elements`
    elements of its shard: where a run resumed on another process or worker count picks the stream up.

    Exact when `elements` is a whole number of batches per worker round and no item was skipped; a stream that
    skipped items is a few elements further on (they are read again). With workers, worker w reads shard elements
    w, w + num_workers, ... and is set to continue from the first of those at or after `elements`.
    """
    if elements < 0:
        raise ValueError(f"elements={elements}; expected >= 0")
    if num_workers <= 0:
        return {"next_index": int(elements)}
    return {
        "next_index_in_cycle": 0,
        "next_index_in_datasets": num_workers,
        "iterators_in_use_indices": list(range(num_workers)),
        "iterators_in_use_states": [{"next_index": -(-(elements - w) // num_workers)} for w in range(num_workers)],
        "exhausted": [0] * num_workers,
        "future_states": {},
    }


def _mp_prefetch(it: grain.IterDataset, num_workers: int, per_worker_buffer_size: int) -> grain.IterDataset:
    # grain >= 0.2.17 reads absl flags in mp_prefetch; outside an absl app (pytest, notebooks, plain scripts)
    # nothing has parsed them, so use their defaults instead of failing with UnparsedFlagAccessError.
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    return it.mp_prefetch(
        grain.MultiprocessingOptions(num_workers=num_workers, per_worker_buffer_size=per_worker_buffer_size)
    )


def eval_batch_count(num_items: int, batch_size: int, shard_count: int) -> int:
    """Batches every process runs in one eval pass (the same on all processes)."""
    return math.ceil(math.ceil(num_items / shard_count) / batch_size)


class _EvalMap:
    """Transforms item `i` of this process's contiguous block (deterministically), or makes a masked padding item.

    Contiguous blocks (not strided) keep the views of one video together, so a transform can reuse a decoded clip.
    """

    def __init__(
        self, source, transform: Transform | None, shard_index: int, shard_count: int, seed: int, template: dict
    ):
        self.source, self.transform, self.seed, self.template = source, transform, seed, template
        per_shard = math.ceil(len(source) / shard_count)
        self.begin = shard_index * per_shard
        self.end = min(len(source), self.begin + per_shard)

    def __call__(self, local_index: int) -> dict:
        item = None
        global_index = self.begin + local_index
        if global_index < self.end:
            item = self.source[global_index]
            item.setdefault("video_index", global_index)
            if self.transform is not None:
                item = self.transform(item, np.random.default_rng([self.seed, global_index]))
            if global_index == self.end - 1 and getattr(self.transform, "stats", None):
                logging.warning("eval data: pass done; counts in this process: %s", dict(self.transform.stats))
        if item is None:
            return {**self.template, "mask": np.bool_(False)}
        return {**_select(item, _EVAL_KEYS), "mask": np.bool_(True)}


def _template(source, transform: Transform | None, seed: int) -> dict:
    """An all-zero element shaped like real ones, for padding; from the first item that transforms."""
    for i in range(len(source)):
        item = source[i]
        item.setdefault("video_index", i)
        if transform is not None:
            item = transform(item, np.random.default_rng([seed, i]))
        if item is not None:
            item = _select(item, _EVAL_KEYS)
            return {k: np.zeros_like(v) for k, v in item.items()} | {"video_index": np.int32(-1), "label": np.int32(-1)}
    raise UnreadableSplitError(f"eval source {source!r}: no item could be read (all {len(source)} skipped)")


def eval_dataset(
    source,
    *,
    batch_size: int,
    transform: Transform | None = None,
    shard_index: int = 0,
    shard_count: int = 1,
    num_workers: int = 0,
    seed: int = 0,
    per_worker_buffer_size: int = 2,
    read_threads: int = 2,
    read_buffer_size: int = 8,
) -> grain.IterDataset:
    """One finite pass over this process's shard, padded so all processes run the same number of full batches.

    Yields {'frames': uint8 (b, T+1, H, W, 3), 'label': int32 (b,), 'video_index': int32 (b,), 'mask': bool (b,)}.
    Padding (and items skipped under the skip policy) have mask=False, label=-1, video_index=-1 and zero frames.
    Process shard_index reads the contiguous block [shard_index * ceil(N / shard_count), ...) of the source.
    For multi-view evaluation pass a view-expanded source (one item per clip x crop, all with their video's
    video_index); items without 'video_index' get their source index.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}; expected >= 1")
    _check_shard(shard_index, shard_count, len(source))
    padded = eval_batch_count(len(source), batch_size, shard_count) * batch_size
    template = _template(source, transform, seed)
    ds = grain.MapDataset.range(padded).map(_EvalMap(source, transform, shard_index, shard_count, seed, template))
    it = ds.batch(batch_size).to_iter_dataset(
        grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=read_buffer_size)
    )
    if num_workers > 0:
        it = _mp_prefetch(it, num_workers, per_worker_buffer_size)
    return it


def train_and_eval(
    train_source,
    eval_source,
    *,
    train_batch_size: int,
    eval_batch_size: int,
    seed: int,
    train_transform: Transform | None = None,
    eval_transform: Transform | None = None,
    shard_index: int = 0,
    shard_count: int = 1,
    num_workers: int = 0,
    eval_num_workers: int = 0,
    per_worker_buffer_size: int = 2,
    read_threads: int = 2,
    read_buffer_size: int = 64,
    clips_per_item: int = 1,
) -> tuple[grain.IterDataset, grain.IterDataset]:
    """This process's (train_dataset, eval_dataset) of every data source; batch sizes are per process.

    num_workers, per_worker_buffer_size and read_buffer_size are the train stream's; the eval pass has
    eval_num_workers and eval_dataset's own buffer sizes.
    """
    shard = dict(shard_index=shard_index, shard_count=shard_count)
    train = train_dataset(
        train_source,
        batch_size=train_batch_size,
        seed=seed,
        transform=train_transform,
        num_workers=num_workers,
        per_worker_buffer_size=per_worker_buffer_size,
        read_threads=read_threads,
        read_buffer_size=read_buffer_size,
        clips_per_item=clips_per_item,
        **shard,
    )
    evaluation = eval_dataset(
        eval_source,
        batch_size=eval_batch_size,
        transform=eval_transform,
        num_workers=eval_num_workers,
        read_threads=read_threads,
        **shard,
    )
    return train, evaluation


def take(ds: grain.IterDataset, n: int) -> list[Any]:
    """First n elements of a dataset (a convenience for tests and benchmarks)."""
    it = iter(ds)
    return [next(it) for _ in range(n)]
