"""The config edge of the data package: `default_data_config()` and `make_datasets(...)` for the trainer.

Config keys are read here and nowhere below: `data_config.source` names one function of `_SOURCES`, which turns
its part of the config into random-access sources and clip transforms; all three feed the same grain pipelines
(`pipeline.train_and_eval`) and the same batches {'frames': uint8 (b, T+1, H, W, 3), 'label': int32 (b,)[,
'video_index', 'mask']}:
  'procedural'      the embedded default: motion-defined synthetic clips, no files (procedural.py);
  'video_manifest'  on-the-fly PyAV decoding of the videos listed in manifest files (video.py, manifest.py);
  'tfds'            pre-decoded ArrayRecord shards written by `python -m vmp_jax.data.prepare` (tfds_builders.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import grain
import ml_collections
from absl import logging

from vmp_jax import cli
from vmp_jax.data import host_cores, pipeline
from vmp_jax.data.procedural import ProceduralMotionSource

SOURCES = ("procedural", "video_manifest", "tfds")


@dataclasses.dataclass(frozen=True)
class DataSplits:
    """What the trainer gets: a train stream, an eval pass (views of eval_num_views per video) and the classes."""

    train: grain.IterDataset
    eval: grain.IterDataset
    num_classes: int
    class_names: list[str]
    eval_num_views: int
    eval_num_videos: int = 0
    num_train_examples: int = 0  # clips in one pass over the train split (videos x clips_per_item), for epochs
    frame_size: tuple[int, int] = (0, 0)  # (H, W) of the frames in every batch
    # The lighter eval pass of the evaluations during training (None: the same as `eval`) and its views per video.
    eval_during_training: grain.IterDataset | None = None
    eval_during_training_num_views: int = 0
    num_workers: int = 0  # the train stream's grain worker processes (data.num_workers resolved)
    clips_per_item: int = 1  # clips each train video gives its batch; a stream element is one video


def default_data_config() -> ml_collections.ConfigDict:
    """Every data key with its default. Clip length T+1 and batch sizes come from the training config."""
    c = ml_collections.ConfigDict()
    c.source = "procedural"  # 'procedural' | 'video_manifest' | 'tfds'
    # grain worker processes per training process for decoding/augmentation (0: in the training process's read
    # threads; -1: one per CPU core this process may use, less one, and 0 below 3 cores: host_cores.py)
    c.num_workers = -1
    c.eval_num_workers = -1  # the same for the eval pass
    c.per_worker_buffer_size = 2  # batches each worker prepares ahead
    c.read_threads = 2  # grain read-ahead threads per process (grain's default 16 oversubscribes small hosts)
    c.read_buffer_size = 64  # train elements read ahead per process (eval: batches; see pipeline.py)

    # --- procedural: the embedded default (no files); class = direction of motion.
    c.procedural = ml_collections.ConfigDict()
    c.procedural.num_train = 4096  # clips in the train split (generated on the fly, ~5 ms each at 9x64x64)
    c.procedural.num_eval = 512  # clips in the eval split
    c.procedural.height = 64
    c.procedural.width = 64
    c.procedural.num_classes = 4  # directions 360/num_classes degrees apart
    c.procedural.train_seed = 0  # train and eval splits differ only by seed
    c.procedural.eval_seed = 1
    c.procedural.speed = (1.0, 2.0)  # object speed range, pixels per frame (<= 2: within a 3x3x3 kernel's reach)
    c.procedural.max_objects = 5
    c.procedural.flicker = 0.08  # per-frame brightness change, +-fraction
    c.procedural.noise_std = 4.0  # per-pixel Gaussian noise, grey levels
    c.procedural.jitter = 0  # camera shake: sparse 1-pixel random walk within +-jitter pixels (0: off)
    c.procedural.clutter = 6  # max static clutter blocks in the background

    # --- real videos (both 'video_manifest' and 'tfds').
    c.train_manifest = ""  # CSV/TSV 'path,label[,start_sec,end_sec]' (manifest.py); labels: int or class name
    c.eval_manifest = ""
    c.class_names = ""  # file with one class name per line; line i (0-based) is label i
    c.video_root = ""  # prefix for relative paths in the manifests ('' = the manifest's folder)
    c.target_fps = 0.0  # resample videos to this frame rate before sampling (0: the container's rate)
    c.sampling_rate = 2  # stride between clip frames, in frames at the target fps (X3D-S: 6 at 30 fps)
    c.short_video = "loop"  # videos shorter than a clip: 'loop' the frames or 'pad' with the last frame
    c.on_bad_input = "error"  # 'error': raise naming the file/line; 'skip': skip the item, count and log it
    c.train_scale = (256, 320)  # train: random short side in [low, high]
    c.crop_size = 224  # train random crop and test crop size (X3D-S: 160, X3D-M: 224)
    c.eval_short_side = 256  # test: resize the short side to this, then take the crops
    c.eval_num_clips = 10  # test: K evenly spaced clips per video
    c.eval_num_crops = 3  # test: 3 crops (both ends and the centre of the long side) or 1 (centre)
    c.eval_during_training_clips = 1  # the evaluations before the last step: views per video (clips x crops) ...
    c.eval_during_training_crops = 1  # ... the final test takes eval_num_clips x eval_num_crops
    # train: several clips per video read, all in the same batch (the batch per process must be a multiple of
    # clips_per_video x crops_per_clip): clips_per_video clips with their own random starts, read together
    # (PySlowFast's DATA.TRAIN_CROP_NUM_TEMPORAL), and crops_per_clip augmentations of each sharing its frames
    # (repeated augmentation, PySlowFast's AUG.NUM_SAMPLE). More clips per decode at the price of correlated
    # examples in a batch; the clips/s they give are in benchmarks/RESULTS.md ("Input pipeline").
    c.clips_per_video = 1
    c.crops_per_clip = 1

    # --- tfds: ArrayRecord shards prepared by `python -m vmp_jax.data.prepare`.
    c.tfds = ml_collections.ConfigDict()
    c.tfds.name = "video_manifest"  # registered builder name (tfds_builders.py)
    c.tfds.config = ""  # builder config name given to prepare (--name)
    c.tfds.data_dir = ""  # tfds data_dir used by prepare ('' = ~/tensorflow_datasets)
    c.tfds.train_split = "train"
    c.tfds.eval_split = "test"
    return c


def validate_config(c: ml_collections.ConfigDict, batch_size: int, num_processes: int = 1) -> None:
    """Raises cli.ConfigError naming the first invalid `data.*` key, for a trainer's global batch of `batch_size`
    clips over `num_processes` processes."""
    if c.source not in SOURCES:
        raise cli.config_error("data.source", c.source, f"one of {SOURCES}")
    for prefix in ("eval_num", "eval_during_training"):
        if c[f"{prefix}_clips"] < 1:
            raise cli.config_error(f"data.{prefix}_clips", c[f"{prefix}_clips"], ">= 1 clips per video")
        if c[f"{prefix}_crops"] not in (1, 3):
            raise cli.config_error(f"data.{prefix}_crops", c[f"{prefix}_crops"], "1 (centre) or 3 crops per clip")
    for key in ("clips_per_video", "crops_per_clip"):
        if c[key] < 1:
            raise cli.config_error(f"data.{key}", c[key], ">= 1")
    if (batch_size // num_processes) % (c.clips_per_video * c.crops_per_clip):
        raise cli.config_error(
            "data.clips_per_video",
            c.clips_per_video,
            f"clips_per_video x crops_per_clip ({c.crops_per_clip}) dividing the batch per process "
            f"(batch_size={batch_size} over {num_processes} processes)",
        )
    for key in ("num_workers", "eval_num_workers"):
        try:
            host_cores.resolve_num_workers(c[key], f"data.{key}")
        except ValueError as e:
            raise cli.ConfigError(f"config.{e}") from None


def frame_size(c: ml_collections.ConfigDict) -> tuple[int, int]:
    """(H, W) of the frames the model is trained on with data config `c`."""
    if c.source == "procedural":
        return (c.procedural.height, c.procedural.width)
    return (c.crop_size, c.crop_size)


def num_classes(c: ml_collections.ConfigDict) -> int:
    """The class count data config `c` fixes without reading any data (procedural clips), else 0."""
    return int(c.procedural.num_classes) if c.source == "procedural" else 0


def frame_stride(c: ml_collections.ConfigDict) -> int:
    """Frames of the video between two frames of a clip (1 for procedural clips, which are their own video)."""
    return 1 if c.source == "procedural" else int(c.sampling_rate)


def clip_options(c: ml_collections.ConfigDict) -> dict:
    """The clip sampling of data config `c`, as keyword arguments of video_sources.train_transform/eval_transform."""
    return dict(
        sampling_rate=c.sampling_rate,
        crop_size=c.crop_size,
        target_fps=c.target_fps,
        short_video=c.short_video,
        on_bad_input=c.on_bad_input,
    )


def per_video_options(c: ml_collections.ConfigDict) -> dict:
    """The clips per video read of data config `c`, as keyword arguments of video_sources.train_transform."""
    return dict(clips_per_video=c.clips_per_video, crops_per_clip=c.crops_per_clip)


def eval_options(c: ml_collections.ConfigDict, during_training: bool = False) -> dict:
    """clip_options(c) and the test views of `c` (or those of the evaluations during training): keyword arguments
    of video_sources.eval_transform."""
    if during_training:
        views = dict(num_clips=c.eval_during_training_clips, num_crops=c.eval_during_training_crops)
    else:
        views = dict(num_clips=c.eval_num_clips, num_crops=c.eval_num_crops)
    return dict(clip_options(c), eval_short_side=c.eval_short_side, **views)


@dataclasses.dataclass(frozen=True)
class _Sources:
    """What a data.source provides: random-access train and eval sources, their transforms, what the trainer is told."""

    train: Any
    eval: Any  # one item per eval view
    class_names: list[str]
    eval_num_views: int
    eval_num_videos: int
    frame_size: tuple[int, int]
    train_transform: pipeline.Transform | None = None
    eval_transform: pipeline.Transform | None = None
    light_eval: Any = None  # the views of the evaluations during training, when they differ
    light_eval_transform: pipeline.Transform | None = None
    light_eval_num_views: int = 0


def _procedural(c: ml_collections.ConfigDict, num_frames: int) -> _Sources:
    p = c.procedural
    kw = dict(
        num_frames=num_frames,
        height=p.height,
        width=p.width,
        num_classes=p.num_classes,
        speed=tuple(p.speed),
        max_objects=p.max_objects,
        flicker=p.flicker,
        noise_std=p.noise_std,
        jitter=p.jitter,
        clutter=p.clutter,
    )
    for key in ("clips_per_video", "crops_per_clip"):
        if c[key] != 1:
            raise ValueError(
                f"data.{key}={c[key]} with data.source='procedural': its clips are generated whole, expected 1 "
                "(several clips per video apply to video files and ArrayRecord videos)"
            )
    train = ProceduralMotionSource(p.num_train, seed=p.train_seed, **kw)
    evaluation = ProceduralMotionSource(p.num_eval, seed=p.eval_seed, **kw)
    return _Sources(train, evaluation, list(train.class_names), 1, len(evaluation), (p.height, p.width))


def _videos(c: ml_collections.ConfigDict, num_frames: int, train, eval_videos, class_names: list[str]) -> _Sources:
    """Random clips of the `train` videos; eval_num_clips x eval_num_crops views of each of `eval_videos`."""
    from vmp_jax.data import video_sources  # pylint: disable=g-import-not-at-top  (PyAV only when used)

    train_t = video_sources.train_transform(
        num_frames, train_scale=tuple(c.train_scale), **per_video_options(c), **clip_options(c)
    )
    eval_t = video_sources.eval_transform(num_frames, **eval_options(c))
    views = video_sources.MultiViewSource(eval_videos, c.eval_num_clips, c.eval_num_crops)
    logging.info(
        "data: %d train videos, %d eval videos x %d views, %d classes",
        len(train),
        len(eval_videos),
        views.num_views,
        len(class_names),
    )
    light = {}
    if (c.eval_during_training_clips, c.eval_during_training_crops) != (c.eval_num_clips, c.eval_num_crops):
        light_views = video_sources.MultiViewSource(
            eval_videos, c.eval_during_training_clips, c.eval_during_training_crops
        )
        light = dict(
            light_eval=light_views,
            light_eval_num_views=light_views.num_views,
            light_eval_transform=video_sources.eval_transform(num_frames, **eval_options(c, True)),
        )
    return _Sources(
        train,
        views,
        list(class_names),
        views.num_views,
        len(eval_videos),
        (c.crop_size, c.crop_size),
        train_t,
        eval_t,
        **light,
    )


def _video_manifest(c: ml_collections.ConfigDict, num_frames: int) -> _Sources:
    from vmp_jax.data import video_sources  # pylint: disable=g-import-not-at-top  (PyAV only when used)

    if not c.class_names:
        raise ValueError("data.class_names is empty; expected the class-names file of the manifests")
    for key in ("train_manifest", "eval_manifest"):
        if not c[key]:
            raise ValueError(f"data.{key} is empty; expected a manifest file (path,label[,start_sec,end_sec])")
    train, evaluation, class_names = video_sources.manifest_sources(
        c.train_manifest, c.eval_manifest, c.class_names, video_root=c.video_root, on_bad_input=c.on_bad_input
    )
    return _videos(c, num_frames, train, evaluation, class_names)


def _tfds(c: ml_collections.ConfigDict, num_frames: int) -> _Sources:
    from vmp_jax.data import tfds_builders  # pylint: disable=g-import-not-at-top  (tensorflow_datasets only when used)

    t = c.tfds
    train, evaluation, class_names = tfds_builders.load_sources(
        t.name, t.config, t.data_dir, t.train_split, t.eval_split
    )
    _check_stored_short_side(c, train)
    return _videos(c, num_frames, train, evaluation, class_names)


def _check_stored_short_side(c: ml_collections.ConfigDict, train) -> None:
    """Warns when the prepared frames' short side is not the one training needs: the upper end of data.train_scale
    (or data.eval_short_side, if larger). Smaller: every clip is upsampled. Larger: every read decodes and resamples
    pixels no crop needs (X3D-S clips/s per core from JPEG at 256 vs 228: benchmarks/RESULTS.md)."""
    if not len(train):
        return
    frame = train[0]["frames"][[0]]
    stored = min(frame.shape[1:3])
    needed = max(int(c.train_scale[1]), int(c.eval_short_side))
    if stored < needed or stored > needed * 1.1:
        logging.warning(
            "data: the prepared frames (tfds config %r) have short side %d, training resizes them to at most %d "
            "(data.train_scale=%s, data.eval_short_side=%d): %s; prepare them with --short_side=%d",
            c.tfds.config,
            stored,
            needed,
            tuple(c.train_scale),
            c.eval_short_side,
            "every clip is upsampled" if stored < needed else "reading decodes more pixels than the crops use",
            needed,
        )


# data.source -> (data config, num_frames) -> _Sources.
_SOURCES: dict[str, Callable[[ml_collections.ConfigDict, int], _Sources]] = {
    "procedural": _procedural,
    "video_manifest": _video_manifest,
    "tfds": _tfds,
}
SOURCES = tuple(_SOURCES)


def _per_process(global_size: int, process_count: int, what: str) -> int:
    if global_size < 1 or global_size % process_count:
        raise ValueError(f"{what}={global_size} must be a positive multiple of the process count {process_count}")
    return global_size // process_count


def make_datasets(
    data_config: ml_collections.ConfigDict,
    *,
    num_frames: int,
    global_batch_size: int,
    eval_batch_size: int,
    seed: int,
    process_index: int = 0,
    process_count: int = 1,
) -> DataSplits:
    """Builds the train stream and the eval pass for this process.

    num_frames: frames per clip including the VMP frame (T+1). global_batch_size / eval_batch_size: over all
    processes (each process gets its share). seed: the training data seed (shuffle and augmentation).
    """
    if data_config.source not in SOURCES:
        raise ValueError(f"data.source={data_config.source!r}; expected one of {SOURCES}")
    if num_frames < 2:
        raise ValueError(f"num_frames={num_frames}; expected >= 2 (T+1 with T >= 1)")
    train_b = _per_process(global_batch_size, process_count, "global_batch_size")
    eval_b = _per_process(eval_batch_size, process_count, "eval_batch_size")
    c = data_config
    sources = _SOURCES[c.source](c, num_frames)
    per_item = c.clips_per_video * c.crops_per_clip
    num_workers = host_cores.resolve_num_workers(c.num_workers)
    eval_num_workers = host_cores.resolve_num_workers(c.eval_num_workers, "data.eval_num_workers")
    if process_index == 0 and (c.num_workers == host_cores.AUTO or c.eval_num_workers == host_cores.AUTO):
        logging.info(
            "data: %d train / %d eval grain workers per process (%d CPU cores available)",
            num_workers,
            eval_num_workers,
            host_cores.available_cores(),
        )
    train, evaluation = pipeline.train_and_eval(
        sources.train,
        sources.eval,
        train_batch_size=train_b,
        eval_batch_size=eval_b,
        seed=seed,
        train_transform=sources.train_transform,
        eval_transform=sources.eval_transform,
        shard_index=process_index,
        shard_count=process_count,
        num_workers=num_workers,
        eval_num_workers=eval_num_workers,
        per_worker_buffer_size=c.per_worker_buffer_size,
        read_threads=c.read_threads,
        read_buffer_size=c.read_buffer_size,
        clips_per_item=per_item,
    )
    light = None
    if sources.light_eval is not None:
        light = pipeline.eval_dataset(
            sources.light_eval,
            batch_size=eval_b,
            transform=sources.light_eval_transform,
            shard_index=process_index,
            shard_count=process_count,
            num_workers=eval_num_workers,
            read_threads=c.read_threads,
        )
    return DataSplits(
        train,
        evaluation,
        len(sources.class_names),
        sources.class_names,
        sources.eval_num_views,
        sources.eval_num_videos,
        len(sources.train) * per_item,
        sources.frame_size,
        light,
        sources.light_eval_num_views,
        num_workers,
        per_item,
    )
