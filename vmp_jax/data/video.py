"""Decoding video files with PyAV: probe the frame rate and length, and decode only the frames a clip needs.

`read_frames` seeks to the key frame before the first wanted frame instead of decoding the file from the start,
then decodes forward until the last wanted frame. Frame indices count from the stream's first frame (or from
`start_sec` when given), at the container's frame rate. Every failure raises `VideoError` naming the file.
"""

from __future__ import annotations

import dataclasses
import math
import os

import av
import numpy as np

from vmp_jax.data import sampling

# The container's frame count can be a frame or two off the decodable frames (edit lists, B-frame tails); a
# shortfall up to this many frames reuses the last decoded frame, a larger one means the file is truncated.
_TAIL_TOLERANCE = 2
# Wanted frames further apart than this are reached by a seek (landing on the key frame before them) instead of by
# decoding every frame between: below it, decoding through is cheaper than a seek's decode from the key frame.
SEEK_GAP_SECONDS = 2.0


class VideoError(ValueError):
    """A video that cannot be read (corrupt, truncated, no video stream); the message names the file."""


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    fps: float  # frames per second of the video stream
    num_frames: int  # frames in the stream (from the header, or duration * fps when the header has none)
    height: int
    width: int


def _fps(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate or float(rate) <= 0:
        raise VideoError("no frame rate in the container")
    return float(rate)


def _info(container, stream) -> VideoInfo:
    fps = _fps(stream)
    n = stream.frames
    if not n:
        if stream.duration is not None and stream.time_base:
            seconds = float(stream.duration * stream.time_base)
        elif container.duration:
            seconds = container.duration / av.time_base
        else:
            raise VideoError("neither a frame count nor a duration in the container")
        n = int(round(seconds * fps))
    return VideoInfo(fps=fps, num_frames=int(n), height=stream.codec_context.height, width=stream.codec_context.width)


def _open(path: str):
    if not os.path.exists(path):
        raise FileNotFoundError(f"video file not found: {path}")
    try:
        container = av.open(path)
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise VideoError(f"{path}: cannot open as a video ({type(e).__name__}: {e})") from e
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: no video stream")
    return container


def probe(path: str) -> VideoInfo:
    """Frame rate, frame count and size from the container header (no decoding)."""
    with _open(path) as container:
        try:
            return _info(container, container.streams.video[0])
        except VideoError as e:
            raise VideoError(f"{path}: {e}") from e


def count_decodable(path: str, *, start_sec: float = 0.0, end_sec: float | None = None) -> tuple[int, int]:
    """(frames the header promises in [start_sec, end_sec), frames of them that decode), decoding every one.

    Slow (a full decode), for checking files up front: a file truncated after its header opens and decodes its
    first frames, so `read_frames` fails only once a clip reaches the missing part.
    """
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            info = _info(container, stream)
        except VideoError as e:
            raise VideoError(f"{path}: {e}") from e
        expected = sampling.window_frames(info.num_frames, info.fps, start_sec, end_sec)
        stream_start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        if start_sec > 0:
            container.seek(
                math.floor((stream_start + start_sec) / stream.time_base), stream=stream, backward=True, any_frame=False
            )
        seen = set()
        try:
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                index = round((float(frame.pts * stream.time_base) - stream_start - start_sec) * info.fps)
                if index >= expected:
                    break
                if index >= 0:
                    seen.add(index)
        except av.error.FFmpegError as e:
            raise VideoError(
                f"{path}: corrupt video data after {len(seen)} of {expected} frames ({type(e).__name__}: {e})"
            ) from e
    return expected, len(seen)


def check_decodes(path: str, *, start_sec: float = 0.0, end_sec: float | None = None) -> int:
    """Decodes the whole window; raises VideoError unless (almost) every frame the header promises decodes.

    -> the number of frames that decode. FileNotFoundError for a missing file.
    """
    expected, decoded = count_decodable(path, start_sec=start_sec, end_sec=end_sec)
    if decoded < expected - _TAIL_TOLERANCE or decoded == 0:
        raise VideoError(
            f"{path}: truncated or corrupt: {decoded} of the {expected} frames its header promises "
            f"decode" + (f" in [{start_sec}, {end_sec}] s" if start_sec or end_sec else "")
        )
    return decoded


def _runs(wanted: np.ndarray, max_gap: int) -> list[np.ndarray]:
    """Split sorted indices where consecutive ones are more than max_gap frames apart (decoded with a seek each)."""
    return np.split(wanted, np.flatnonzero(np.diff(wanted) > max_gap) + 1)


def _decode(container, stream, runs: list[np.ndarray], first_time: float, seek: bool) -> dict[int, np.ndarray]:
    """Decoded frames {index: (H, W, 3) uint8} of `runs` (sorted unique indices relative to first_time, split by
    `_runs`). seek=True: a seek to the key frame before each run, then decoding forward to the run's last frame;
    seek=False: one pass from where the container is.
    """
    fps = _fps(stream)
    stream_start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    out = {}
    for run in runs:
        first, last = int(run[0]), int(run[-1])
        if seek:
            target = stream_start + first_time + first / fps
            container.seek(int(math.floor(target / stream.time_base)), stream=stream, backward=True, any_frame=False)
        wanted_set = set(run.tolist())
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            index = int(round((float(frame.pts * stream.time_base) - stream_start - first_time) * fps))
            if index in wanted_set:
                out[index] = frame.to_ndarray(format="rgb24")
            if index >= last:
                break
    return out


def read_frames(path: str, indices, *, start_sec: float = 0.0) -> np.ndarray:
    """Decode frames `indices` (counted from start_sec, at the stream's fps).  -> uint8 (len(indices), H, W, 3).

    Each frame is decoded once however often it is asked for (several clips of one video: one call). Wanted
    frames more than SEEK_GAP_SECONDS apart are reached by a seek rather than by decoding the frames between.
    """
    indices = np.asarray(indices, np.int64)
    if indices.ndim != 1 or indices.size == 0 or indices.min() < 0:
        raise ValueError(f"{path}: frame indices must be a non-empty 1-D array of non-negative ints, got {indices}")
    wanted = np.unique(indices)
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            runs = _runs(wanted, max(1, int(SEEK_GAP_SECONDS * _fps(stream))))
            got = _decode(container, stream, runs, start_sec, seek=int(wanted[0]) > 0 or start_sec > 0 or len(runs) > 1)
            if got and any(i not in got for i in wanted.tolist() if i < max(got)):
                # A seek landed past a wanted frame (inexact index in some containers): one pass from the start.
                container.seek(0, stream=stream)
                got = _decode(container, stream, [wanted], start_sec, seek=False)
        except av.error.FFmpegError as e:
            raise VideoError(f"{path}: corrupt video data ({type(e).__name__}: {e})") from e
    if not got:
        raise VideoError(
            f"{path}: no frame could be decoded at or after frame {int(wanted[0])} "
            f"(start_sec={start_sec}); the file is empty, corrupt or shorter than expected"
        )
    missing = [i for i in wanted.tolist() if i not in got]
    if missing:
        last_got = max(got)
        if min(missing) < last_got or max(missing) - last_got > _TAIL_TOLERANCE:
            raise VideoError(
                f"{path}: truncated or corrupt: frames {missing[:5]}{'...' if len(missing) > 5 else ''} "
                f"missing, last decodable frame is {last_got}"
            )
        for i in missing:
            got[i] = got[last_got]
    return np.stack([got[int(i)] for i in indices])
