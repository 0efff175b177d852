"""TFDS builders that pre-decode videos (or procedural clips) into ArrayRecord shards, and their readers.

One example = one whole video (its time window), decoded at the target fps and resized so its short side is
`short_side`, with its label and fps. Frames are stored as JPEG per frame by default (`storage='jpeg'`, quality
90) or raw uint8 (`storage='raw'`); see benchmarks/RESULTS_data.md for the size/speed measurements behind the
default. Reading needs no TensorFlow: `tfds.builder_from_directory(...).as_data_source(split)` over
ArrayRecord, wrapped by `ArrayRecordVideoSource` into the items `ClipTransform` samples clips from.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import os

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from vmp_jax.data import manifest as manifest_lib
from vmp_jax.data import sampling, transforms, video
from vmp_jax.data.procedural import ProceduralMotionSource

STORAGES = ("jpeg", "raw")
_VERSION = tfds.core.Version("1.0.0")


def _features(storage: str, class_names: list[str]) -> tfds.features.FeaturesDict:
    common = {
        "label": tfds.features.ClassLabel(names=class_names),
        "fps": tfds.features.Scalar(dtype=np.float32),
        "video_index": tfds.features.Scalar(dtype=np.int64),
    }
    if storage == "raw":
        return tfds.features.FeaturesDict(
            {"frames": tfds.features.Tensor(shape=(None, None, None, 3), dtype=np.uint8, encoding="bytes"), **common}
        )
    return tfds.features.FeaturesDict(
        {
            # All frames' JPEG files concatenated, and N+1 offsets into them. encoding='bytes' stores one blob instead
            # of a varint list per byte: 5x faster to parse.
            "jpeg": tfds.features.Tensor(shape=(None,), dtype=np.uint8, encoding="bytes"),
            "jpeg_offsets": tfds.features.Tensor(shape=(None,), dtype=np.int64, encoding="bytes"),
            **common,
        }
    )


def encode_jpeg(frames: np.ndarray, quality: int = 90) -> tuple[np.ndarray, np.ndarray]:
    """(N, H, W, 3) uint8 -> (concatenated JPEG bytes as uint8 (B,), offsets int64 (N+1,))."""
    blobs = []
    for f in frames:
        buf = io.BytesIO()
        Image.fromarray(f).save(buf, format="JPEG", quality=quality)
        blobs.append(buf.getvalue())
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)
    return np.frombuffer(b"".join(blobs), np.uint8), offsets


class JpegFrames:
    """Lazy frames of a JPEG-stored video: len() and frames[indices] decode only the requested frames."""

    def __init__(self, data: np.ndarray, offsets: np.ndarray):
        self.data, self.offsets = data, offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, indices) -> np.ndarray:
        idx = np.asarray(indices, np.int64)
        cache = {}
        for i in np.unique(idx).tolist():
            blob = self.data[self.offsets[i] : self.offsets[i + 1]].tobytes()
            image = Image.open(io.BytesIO(blob))
            cache[i] = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))  # convert() copies
        return np.stack([cache[i] for i in idx.reshape(-1).tolist()]).reshape(idx.shape + cache[idx.flat[0]].shape)


@dataclasses.dataclass
class VideoManifestConfig(tfds.core.BuilderConfig):
    """A dataset made from manifests: {split: manifest path} + class names, decoded at target_fps, short side."""

    manifests: dict = dataclasses.field(default_factory=dict)
    class_names: str = ""
    video_root: str = ""
    target_fps: float = 0.0  # 0: keep the container's rate
    short_side: int = 256  # stored short side (>= the train scale's upper end you will use)
    storage: str = "jpeg"  # 'jpeg' (quality 90) or 'raw' uint8
    on_bad_input: str = "error"  # 'skip': leave unreadable videos out (counted in builder.skipped)


def _store(frames: np.ndarray, storage: str) -> dict:
    if storage == "raw":
        return {"frames": frames}
    data, offsets = encode_jpeg(frames)
    return {"jpeg": data, "jpeg_offsets": offsets}


def decode_whole_video(
    path: str, *, start_sec: float, end_sec: float | None, target_fps: float, short_side: int
) -> tuple[np.ndarray, float]:
    """All frames of a video's window at target_fps, short side resized.  -> ((N, H, W, 3) uint8, fps)."""
    info = video.probe(path)
    n_source = sampling.window_frames(info.num_frames, info.fps, start_sec, end_sec)
    if n_source < 1:
        raise video.VideoError(f"{path}: window [{start_sec}, {end_sec}] s holds no frames")
    n = sampling.frames_at_fps(n_source, info.fps, target_fps)
    idx = sampling.to_source_indices(np.arange(n), info.fps, target_fps)
    frames = video.read_frames(path, idx, start_sec=start_sec)
    return transforms.resize_short_side(frames, short_side), (target_fps or info.fps)


class VideoManifest(tfds.core.GeneratorBasedBuilder):
    """Videos listed in manifests -> ArrayRecord of decoded, resized frames. Construct with
    config=VideoManifestConfig."""

    VERSION = _VERSION
    BUILDER_CONFIGS = []  # configs are made by the user (prepare.py), not predefined

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.skipped = collections.Counter()
        self.problems: list[str] = []
        self.num_videos = collections.Counter()

    def _info(self) -> tfds.core.DatasetInfo:
        c = self.builder_config
        if c.storage not in STORAGES:
            raise ValueError(f"storage={c.storage!r}; expected one of {STORAGES}")
        return self.dataset_info_from_configs(
            features=_features(c.storage, manifest_lib.read_class_names(c.class_names))
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        return {split: self._generate_examples(split, path) for split, path in self.builder_config.manifests.items()}

    def _generate_examples(self, split: str, manifest_path: str):
        c = self.builder_config
        names = manifest_lib.read_class_names(c.class_names)
        records, problems = manifest_lib.read_manifest(
            manifest_path, names, video_root=c.video_root, on_bad_input=c.on_bad_input
        )
        self.problems += problems
        if problems:
            self.skipped["malformed_line"] += len(problems)
        for i, r in enumerate(records):
            try:
                frames, fps = decode_whole_video(
                    r.path, start_sec=r.start_sec, end_sec=r.end_sec, target_fps=c.target_fps, short_side=c.short_side
                )
            except (FileNotFoundError, video.VideoError) as e:
                if c.on_bad_input == "error":
                    raise type(e)(f"{r.where}: {e}") from e
                self.skipped[type(e).__name__] += 1
                self.problems.append(f"{r.where}: {e}")
                continue
            self.num_videos[split] += 1
            yield i, {**_store(frames, c.storage), "label": r.label, "fps": np.float32(fps), "video_index": i}


@dataclasses.dataclass
class ProceduralMotionConfig(tfds.core.BuilderConfig):
    """The procedural motion data, written to ArrayRecord (for benchmarks, or to decouple generation from training)."""

    num_train: int = 4096
    num_eval: int = 512
    num_frames: int = 9
    height: int = 64
    width: int = 64
    num_classes: int = 4
    train_seed: int = 0
    eval_seed: int = 1
    storage: str = "raw"


class ProceduralMotion(tfds.core.GeneratorBasedBuilder):
    """ProceduralMotionSource clips as ArrayRecord; 'fps' is a nominal 25."""

    VERSION = _VERSION
    BUILDER_CONFIGS = [ProceduralMotionConfig(name="default")]

    def _info(self) -> tfds.core.DatasetInfo:
        c = self.builder_config
        names = ProceduralMotionSource(1, 2, 16, 16, c.num_classes).class_names
        return self.dataset_info_from_configs(features=_features(c.storage, names))

    def _split_generators(self, dl_manager):
        del dl_manager
        c = self.builder_config
        return {
            "train": self._generate_examples(c.num_train, c.train_seed),
            "test": self._generate_examples(c.num_eval, c.eval_seed),
        }

    def _generate_examples(self, num: int, seed: int):
        c = self.builder_config
        src = ProceduralMotionSource(num, c.num_frames, c.height, c.width, c.num_classes, seed)
        for i in range(num):
            item = src[i]
            yield (
                i,
                {
                    **_store(item["frames"], c.storage),
                    "label": int(item["label"]),
                    "fps": np.float32(25.0),
                    "video_index": i,
                },
            )


class ArrayRecordVideoSource:
    """A prepared split as a random-access source.

    item: {'frames': uint8 (N, H, W, 3) array or JpegFrames, 'fps', 'label', 'video_index', 'source_index'}.
    """

    def __init__(self, data_source):
        self.data_source = data_source

    def __len__(self) -> int:
        return len(self.data_source)

    def __getitem__(self, index: int) -> dict:
        ex = self.data_source[int(index)]
        frames = ex["frames"] if "frames" in ex else JpegFrames(ex["jpeg"], ex["jpeg_offsets"])
        # Examples are shuffled on disk; 'source_index' is the video's position in its manifest (or procedural index).
        return {
            "frames": frames,
            "fps": float(ex["fps"]),
            "label": int(ex["label"]),
            "video_index": int(index),
            "source_index": int(ex["video_index"]),
        }

    def __repr__(self) -> str:
        return f"ArrayRecordVideoSource({len(self)} videos)"


def dataset_dir(name: str, config: str, data_dir: str) -> str:
    """Folder of a prepared dataset: data_dir/name/config/1.0.0."""
    data_dir = data_dir or os.path.join(os.path.expanduser("~"), "tensorflow_datasets")
    return os.path.join(data_dir, name, config, str(_VERSION))


def load_sources(name: str, config: str, data_dir: str, train_split: str, eval_split: str):
    """(train source, eval source, class names) of a prepared dataset, read from its folder (no builder code run)."""
    path = dataset_dir(name, config, data_dir)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"prepared dataset not found at {path}; run `python -m vmp_jax.data.prepare` first")
    builder = tfds.builder_from_directory(path)
    splits = list(builder.info.splits.keys())
    for split in (train_split, eval_split):
        if split not in splits:
            raise ValueError(f"{path}: no split {split!r}; it has {splits}")
    names = list(builder.info.features["label"].names)
    return (
        ArrayRecordVideoSource(builder.as_data_source(train_split)),
        ArrayRecordVideoSource(builder.as_data_source(eval_split)),
        names,
    )
