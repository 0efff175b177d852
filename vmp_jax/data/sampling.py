"""Which frames make a clip: T+1 frames at a stride, a random start for training, K evenly spaced clips for test.

All indices here are in units of frames *at the target fps*; `to_source_indices` maps them to the container's
frames. Videos shorter than a clip are looped or padded with their last frame (`short_video`), and the callers
count them. `window_frames` counts the frames of a manifest's time window, at the container's rate.
"""

from __future__ import annotations

import math

import numpy as np

SHORT_VIDEO_POLICIES = ("loop", "pad")


def clip_span(num_frames: int, sampling_rate: int) -> int:
    """Frames a clip covers: (num_frames - 1) * sampling_rate + 1."""
    if num_frames < 1 or sampling_rate < 1:
        raise ValueError(f"num_frames={num_frames}, sampling_rate={sampling_rate}; expected both >= 1")
    return (num_frames - 1) * sampling_rate + 1


def _check(num_available: int, short_video: str) -> None:
    if num_available < 1:
        raise ValueError(f"a video with {num_available} frames has nothing to sample")
    if short_video not in SHORT_VIDEO_POLICIES:
        raise ValueError(f"short_video={short_video!r}; expected one of {SHORT_VIDEO_POLICIES}")


def _place(start: int, num_available: int, num_frames: int, sampling_rate: int, short_video: str) -> np.ndarray:
    idx = start + sampling_rate * np.arange(num_frames)
    if short_video == "loop":
        return idx % num_available
    return np.minimum(idx, num_available - 1)


def is_short(num_available: int, num_frames: int, sampling_rate: int) -> bool:
    """Whether a video of num_available frames is shorter than one clip (and so is looped or padded)."""
    return num_available < clip_span(num_frames, sampling_rate)


def train_clip_indices(
    num_available: int, num_frames: int, sampling_rate: int, rng: np.random.Generator, short_video: str = "loop"
) -> np.ndarray:
    """int64 (num_frames,) indices of a clip starting uniformly at random.

    Short videos: 'loop' starts anywhere and wraps around; 'pad' starts at 0 and repeats the last frame.
    """
    _check(num_available, short_video)
    span = clip_span(num_frames, sampling_rate)
    if num_available >= span:
        start = int(rng.integers(0, num_available - span + 1))
    else:
        start = int(rng.integers(0, num_available)) if short_video == "loop" else 0
    return _place(start, num_available, num_frames, sampling_rate, short_video)


def eval_clip_indices(
    num_available: int, num_frames: int, sampling_rate: int, clip_index: int, num_clips: int, short_video: str = "loop"
) -> np.ndarray:
    """int64 (num_frames,) indices of test clip `clip_index` of `num_clips` evenly spaced ones.

    Starts are round(k * (num_available - span) / (num_clips - 1)) (the centre start for num_clips=1), so the
    first clip starts at frame 0 and the last ends at the last frame. Short videos: 'loop' spreads the starts
    over the video and wraps; 'pad' uses start 0 for every clip.
    """
    _check(num_available, short_video)
    if not 0 <= clip_index < num_clips:
        raise ValueError(f"clip_index={clip_index}; expected in [0, num_clips={num_clips})")
    span = clip_span(num_frames, sampling_rate)
    if num_available >= span:
        slack = num_available - span
        start = slack // 2 if num_clips == 1 else int(round(clip_index * slack / (num_clips - 1)))
    elif short_video == "loop":
        start = (clip_index * num_available) // num_clips
    else:
        start = 0
    return _place(start, num_available, num_frames, sampling_rate, short_video)


def window_frames(num_frames: int, fps: float, start_sec: float = 0.0, end_sec: float | None = None) -> int:
    """Frames of a video of num_frames at fps inside its time window [start_sec, end_sec) (None: to the end).

    May be < 1 (a window past the end); the callers raise, naming the file.
    """
    n = num_frames - int(round(start_sec * fps))
    if end_sec is not None:
        n = min(n, int(math.floor((end_sec - start_sec) * fps + 1e-6)))
    return n


def frames_at_fps(num_source_frames: int, source_fps: float, target_fps: float) -> int:
    """How many frames a video of num_source_frames at source_fps has when resampled to target_fps."""
    if not target_fps or math.isclose(target_fps, source_fps):
        return num_source_frames
    return max(1, int(math.floor(num_source_frames * target_fps / source_fps + 1e-6)))


def to_source_indices(indices: np.ndarray, source_fps: float, target_fps: float) -> np.ndarray:
    """Map frame indices at target_fps to the source frames shown at those times (nearest earlier frame)."""
    if not target_fps or math.isclose(target_fps, source_fps):
        return np.asarray(indices, np.int64)
    return np.floor(np.asarray(indices) * (source_fps / target_fps) + 1e-6).astype(np.int64)
