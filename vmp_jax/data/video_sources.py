"""Real-video sources and the clip transform: record -> decoded, sampled, augmented uint8 clip.

The same `ClipTransform` serves videos decoded on the fly (items with a 'path') and pre-decoded videos read from
ArrayRecord (items with 'frames' holding the whole video and its 'fps'), so both feed the trainer identically.
Eval uses `MultiViewSource`: one item per (video, clip k of K, crop c of C), all carrying their video's index.
Everything here takes plain arguments; builders.py translates the data config into them.
"""

from __future__ import annotations

import collections
import os
import threading

import numpy as np
from absl import logging

from vmp_jax.data import malloc_tuning, sampling, transforms, video
from vmp_jax.data import manifest as manifest_lib


class ManifestSource:
    """Random-access records of a manifest.  item: {'path', 'label', 'start_sec', 'end_sec', 'where', 'video_index'}."""

    def __init__(self, records: list[manifest_lib.VideoRecord], name: str = ""):
        self.records, self.name = list(records), name  # name: the manifest file, for messages

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        r = self.records[index]
        return {
            "path": r.path,
            "label": r.label,
            "start_sec": r.start_sec,
            "end_sec": -1.0 if r.end_sec is None else r.end_sec,
            "where": r.where,
            "video_index": int(index),
        }

    def __repr__(self) -> str:
        return f"ManifestSource({self.name + ': ' if self.name else ''}{len(self)} videos)"


class MultiViewSource:
    """num_clips x num_crops views per item of `base`; view v of video i is item i * K * C + v (clips major)."""

    def __init__(self, base, num_clips: int, num_crops: int):
        if num_clips < 1 or num_crops not in (1, 3):
            raise ValueError(f"num_clips={num_clips}, num_crops={num_crops}; expected num_clips >= 1, num_crops 1 or 3")
        self.base, self.num_clips, self.num_crops = base, num_clips, num_crops

    @property
    def num_views(self) -> int:
        return self.num_clips * self.num_crops

    def __len__(self) -> int:
        return len(self.base) * self.num_views

    def __getitem__(self, index: int) -> dict:
        video_index, view = divmod(int(index), self.num_views)
        item = dict(self.base[video_index])
        item.update(video_index=video_index, clip_index=view // self.num_crops, crop_index=view % self.num_crops)
        return item

    def __repr__(self) -> str:
        return f"MultiViewSource({self.base!r}, num_clips={self.num_clips}, num_crops={self.num_crops})"


class ClipTransform:
    """Record -> {'frames': uint8 (num_frames, crop, crop, 3), 'label', 'video_index'}, or None when skipped.

    train=True: random clip start, random short-side scale in train_scale, random crop, random flip.
    Several clips per video read (training), as PySlowFast's temporal clips and repeated augmentation:
    clips_per_video=K clips with their own random starts, read together (one record read for ArrayRecord; from a
    file, frames they share decode once and runs of frames further apart than video.SEEK_GAP_SECONDS seek), and
    crops_per_clip=R augmentations (scale, crop, flip) of each, which share all their frames: 'frames' is then
    (K * R, num_frames, crop, crop, 3) and the pipeline puts the K * R clips into one batch as K * R examples.
    train=False: clip item['clip_index'] of num_clips evenly spaced, short side eval_short_side, crop
    item['crop_index'] of num_crops (default: the single centre view).
    `stats` counts short videos (looped/padded) and skipped items by reason, in this process.
    """

    def __init__(
        self,
        *,
        num_frames: int,
        sampling_rate: int,
        train: bool,
        crop_size: int,
        train_scale: tuple[int, int] = (256, 320),
        eval_short_side: int = 256,
        num_clips: int = 1,
        num_crops: int = 1,
        target_fps: float = 0.0,
        short_video: str = "loop",
        on_bad_input: str = "error",
        clips_per_video: int = 1,
        crops_per_clip: int = 1,
    ):
        for name, value in (("clips_per_video", clips_per_video), ("crops_per_clip", crops_per_clip)):
            if value < 1 or (value > 1 and not train):
                raise ValueError(f"{name}={value}; expected >= 1, and 1 for evaluation (views are clips x crops)")
        if on_bad_input not in manifest_lib.SKIP_POLICIES:
            raise ValueError(f"on_bad_input={on_bad_input!r}; expected one of {manifest_lib.SKIP_POLICIES}")
        if short_video not in sampling.SHORT_VIDEO_POLICIES:
            raise ValueError(f"short_video={short_video!r}; expected one of {sampling.SHORT_VIDEO_POLICIES}")
        if not train and eval_short_side < crop_size:
            raise ValueError(f"eval_short_side={eval_short_side} < crop_size={crop_size}")
        sampling.clip_span(num_frames, sampling_rate)
        self.num_frames, self.sampling_rate, self.train, self.crop_size = num_frames, sampling_rate, train, crop_size
        self.train_scale, self.eval_short_side = tuple(train_scale), eval_short_side
        self.num_clips, self.num_crops, self.target_fps = num_clips, num_crops, float(target_fps)
        self.short_video, self.on_bad_input = short_video, on_bad_input
        self.clips_per_video, self.crops_per_clip = clips_per_video, crops_per_clip
        self.stats = collections.Counter()
        self._lock = threading.Lock()
        malloc_tuning.keep_large_buffers_in_heap()  # this process reads clips: reuse their buffers
        self._cached = (None, None)

    def __getstate__(self):  # picklable for grain worker processes (locks are not)
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state):  # in a grain worker process
        self.__dict__.update(state, _lock=threading.Lock())
        malloc_tuning.keep_large_buffers_in_heap()

    @property
    def clips_per_item(self) -> int:
        """Clips one call returns: clips_per_video x crops_per_clip."""
        return self.clips_per_video * self.crops_per_clip

    def _tally(self, key: str) -> int:
        with self._lock:  # grain calls transforms from several threads
            self.stats[key] += 1
            return sum(v for k, v in self.stats.items() if k.startswith("skipped"))

    def _indices(self, num_available: int, item: dict, rng: np.random.Generator) -> np.ndarray:
        if sampling.is_short(num_available, self.num_frames, self.sampling_rate):
            self._tally(f"short_video_{self.short_video}")
        if self.train:
            return sampling.train_clip_indices(
                num_available, self.num_frames, self.sampling_rate, rng, self.short_video
            )
        return sampling.eval_clip_indices(
            num_available,
            self.num_frames,
            self.sampling_rate,
            int(item.get("clip_index", 0)),
            self.num_clips,
            self.short_video,
        )

    def _sampled(self, num_available: int, item: dict, rng: np.random.Generator) -> np.ndarray:
        """Frame indices of the clip (of clips_per_video clips, one after the other): (K * num_frames,) int64."""
        return np.concatenate([self._indices(num_available, item, rng) for _ in range(self.clips_per_video)])

    def _clip(self, item: dict, rng: np.random.Generator) -> np.ndarray:
        """The sampled clip(s) at full resolution, one after the other: (K * num_frames, H, W, 3) uint8."""
        if "frames" in item:  # a pre-decoded video (all frames, at item['fps'])
            # An ndarray, or lazy JpegFrames that decode only the indexed frames (never np.asarray it whole).
            frames, fps = item["frames"], float(item["fps"])
            if len(frames) == 0 or (isinstance(frames, np.ndarray) and frames.ndim != 4):
                raise video.VideoError(f"stored video has frames of shape {np.shape(frames)}; expected (N>0, H, W, 3)")
            n = sampling.frames_at_fps(len(frames), fps, self.target_fps)
            idx = sampling.to_source_indices(self._sampled(n, item, rng), fps, self.target_fps)
            return frames[np.minimum(idx, len(frames) - 1)]
        path, start = item["path"], float(item.get("start_sec", 0.0))
        info = video.probe(path)
        end = float(item.get("end_sec", -1.0))  # -1: to the end of the video
        n_source = sampling.window_frames(info.num_frames, info.fps, start, end if end > 0 else None)
        if n_source < 1:
            raise video.VideoError(
                f"{path}: window [{start}, {end}] s holds no frames (video: {info.num_frames} "
                f"frames at {info.fps:g} fps)"
            )
        n = sampling.frames_at_fps(n_source, info.fps, self.target_fps)
        idx = sampling.to_source_indices(self._sampled(n, item, rng), info.fps, self.target_fps)
        return video.read_frames(path, idx, start_sec=start)

    def _skip(self, item: dict, error: Exception) -> None:
        where = item.get("where") or item.get("path") or f"video {item.get('video_index')}"
        if self.on_bad_input == "error":
            if isinstance(error, FileNotFoundError):
                raise FileNotFoundError(f"{where}: {error}") from error
            raise video.VideoError(f"{where}: {error}") from error
        if self._tally(f"skipped_{type(error).__name__}") <= 20:  # the first ones in full; then only the counts
            logging.warning("skipping %s: %s", where, error)

    def __call__(self, item: dict, rng: np.random.Generator) -> dict | None:
        try:
            key = (item.get("path"), item.get("video_index"), item.get("clip_index"))
            cached = self._cached  # one tuple, read and written atomically: grain calls this from several threads
            if not self.train and cached[0] == key:  # the 3 crops of one eval clip decode once
                clip = cached[1]
            else:
                clip = self._clip(item, rng)
                if not self.train:
                    self._cached = (key, clip)
            if self.train:
                clips = [
                    transforms.random_resized_crop_flip(
                        clip[k * self.num_frames : (k + 1) * self.num_frames],
                        rng,
                        scale_range=self.train_scale,
                        crop_size=self.crop_size,
                    )
                    for k in range(self.clips_per_video)
                    for _ in range(self.crops_per_clip)
                ]
                frames = clips[0] if len(clips) == 1 else np.stack(clips)
            else:
                frames = transforms.eval_view(
                    clip,
                    short_side=self.eval_short_side,
                    crop_size=self.crop_size,
                    crop_index=int(item.get("crop_index", 0)) if self.num_crops == 3 else 0,
                    num_crops=self.num_crops,
                )
        except (FileNotFoundError, video.VideoError) as e:
            self._skip(item, e)
            return None
        return {"frames": frames, "label": np.int32(item["label"]), "video_index": np.int32(item["video_index"])}


def train_transform(
    num_frames: int,
    sampling_rate: int,
    crop_size: int,
    *,
    train_scale: tuple[int, int] = (256, 320),
    target_fps: float = 0.0,
    short_video: str = "loop",
    on_bad_input: str = "error",
    clips_per_video: int = 1,
    crops_per_clip: int = 1,
) -> ClipTransform:
    """The training ClipTransform: a random clip, short side random in train_scale, a random crop_size crop, flip
    (clips_per_video such clips of each video, crops_per_clip augmentations of each, from one read of it)."""
    return ClipTransform(
        clips_per_video=clips_per_video,
        crops_per_clip=crops_per_clip,
        num_frames=num_frames,
        sampling_rate=sampling_rate,
        train=True,
        crop_size=crop_size,
        train_scale=train_scale,
        target_fps=target_fps,
        short_video=short_video,
        on_bad_input=on_bad_input,
    )


def eval_transform(
    num_frames: int,
    sampling_rate: int,
    crop_size: int,
    *,
    eval_short_side: int = 256,
    num_clips: int = 1,
    num_crops: int = 1,
    target_fps: float = 0.0,
    short_video: str = "loop",
    on_bad_input: str = "error",
) -> ClipTransform:
    """The test-time ClipTransform: view (clip k of num_clips) x (crop c of num_crops) at short side eval_short_side."""
    return ClipTransform(
        num_frames=num_frames,
        sampling_rate=sampling_rate,
        train=False,
        crop_size=crop_size,
        eval_short_side=eval_short_side,
        num_clips=num_clips,
        num_crops=num_crops,
        target_fps=target_fps,
        short_video=short_video,
        on_bad_input=on_bad_input,
    )


def manifest_sources(
    train_manifest: str, eval_manifest: str, class_names: str, *, video_root: str = "", on_bad_input: str = "error"
) -> tuple[ManifestSource, ManifestSource, list[str]]:
    """(train source, eval source, class names) of two manifests and their class-names file (manifest.py)."""
    names = manifest_lib.read_class_names(class_names)
    train, evaluation = (
        ManifestSource(
            manifest_lib.read_manifest(path, names, video_root=video_root, on_bad_input=on_bad_input)[0], name=path
        )
        for path in (train_manifest, eval_manifest)
    )
    return train, evaluation, names


def check_files_exist(records: list[manifest_lib.VideoRecord]) -> list[str]:
    """Manifest locations ('file:line: path') whose video file does not exist."""
    return [f"{r.where}: {r.path}" for r in records if not os.path.exists(r.path)]
