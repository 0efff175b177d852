"""The views of one video file that a trained run's evaluation would score, from the run's data config
(`vmp_jax.predict`): runs trained on video files (`data.source` 'video_manifest' or 'tfds') get their eval clips
and crops; runs trained on procedural clips, which have no video sampling to copy, one view spread uniformly over
the whole video."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vmp_jax.data import builders, transforms, video, video_sources


def uniform_clip(path: str, num_frames: int, frame_size: Sequence[int]) -> np.ndarray:
    """num_frames frames evenly spread over the video, resized to cover frame_size and centre-cropped to it.

    -> (num_frames, H, W, 3) uint8.
    """
    n = video.probe(path).num_frames
    frames = video.read_frames(path, np.round(np.linspace(0, max(n - 1, 0), num_frames)).astype(np.int64))
    return transforms.cover_and_centre_crop(frames, *frame_size)


def video_views(
    path: str,
    data_config,
    num_frames: int,
    frame_size: Sequence[int],
    num_clips: int | None = None,
    num_crops: int | None = None,
) -> np.ndarray:
    """The clips the run's evaluation would score for `path` (module docstring): (V, num_frames, H, W, 3) uint8."""
    if data_config.source == "procedural":  # no video sampling to copy
        return uniform_clip(path, num_frames, frame_size)[None]
    if tuple(frame_size) != (data_config.crop_size, data_config.crop_size):
        raise ValueError(f"data.crop_size={data_config.crop_size} but the model takes frames of {tuple(frame_size)}")
    options = builders.eval_options(data_config)
    options.update(on_bad_input="error")  # name the bad file; the run's 'skip' policy would drop its views
    if num_clips is not None:
        options.update(num_clips=num_clips)
    if num_crops is not None:
        options.update(num_crops=num_crops)
    transform = video_sources.eval_transform(num_frames, **options)
    rng = np.random.default_rng(0)  # unused by the eval transform, which is deterministic
    views = [
        transform({"path": path, "label": 0, "video_index": 0, "clip_index": k, "crop_index": c}, rng)["frames"]
        for k in range(transform.num_clips)
        for c in range(transform.num_crops)
    ]
    return np.stack(views)
