"""Top-5 classes of video files, from an export of `vmp_jax.export` (its jax.export artifact and JSON files only).

    python -m vmp_jax.predict --export OUT VIDEO [VIDEO ...] [--num_clips K] [--num_crops C] [--top_k 5]

The model is never rebuilt: the logits come from `OUT/model.jax_export`, the class names and input shape from
`OUT/run_info.json`, the sampling from the `data` section of `OUT/config.json`. Clips are sampled as the run's
evaluation samples them:
- runs trained on video files (`data.source` 'video_manifest' or 'tfds'): K evenly spaced clips of num_frames
  frames `data.sampling_rate` apart (at `data.target_fps`) x C crops of the frames resized to short side
  `data.eval_short_side` (`data.eval_num_clips` x `data.eval_num_crops` unless given), softmax averaged over views;
- runs trained on procedural clips, which have no video sampling to copy: one view of num_frames frames spread
  uniformly over the whole video, resized to cover frame_size and centre-cropped to it.
A missing or unreadable video prints an error naming the file; the others are still scored (exit status 1).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

import jax
import numpy as np

from vmp_jax import trained_run
from vmp_jax.data import builders as data_builders
from vmp_jax.data import transforms, video, video_sources
from vmp_jax.data.multiview import softmax

EXPORTED = "model.jax_export"
REAL_VIDEO_SOURCES = ("video_manifest", "tfds")


def load_exported(path: str) -> jax.export.Exported:
    """A serialised `jax.export` artifact; `.call(clips)` runs it."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: expected the jax.export artifact written by vmp_jax.export")
    with open(path, "rb") as f:
        return jax.export.deserialize(bytearray(f.read()))


def uniform_clip(path: str, num_frames: int, frame_size: Sequence[int]) -> np.ndarray:
    """num_frames frames evenly spread over the video, resized to cover frame_size and centre-cropped to it.

    -> (num_frames, H, W, 3) uint8.
    """
    n = video.probe(path).num_frames
    frames = video.read_frames(path, np.round(np.linspace(0, max(n - 1, 0), num_frames)).astype(np.int64))
    return transforms.cover_and_centre_crop(frames, *frame_size)


def video_views(path: str, data_config, num_frames: int, frame_size: Sequence[int], num_clips: int | None = None,
                num_crops: int | None = None) -> np.ndarray:
    """The clips the run's evaluation would score for `path` (module docstring): (V, num_frames, H, W, 3) uint8."""
    if data_config.source not in REAL_VIDEO_SOURCES:
        return uniform_clip(path, num_frames, frame_size)[None]
    if tuple(frame_size) != (data_config.crop_size, data_config.crop_size):
        raise ValueError(f"data.crop_size={data_config.crop_size} but the model takes frames of {tuple(frame_size)}")
    options = data_builders.eval_options(data_config)
    options.update(on_bad_input="error")  # name the bad file; the run's 'skip' policy would drop its views
    if num_clips is not None:
        options.update(num_clips=num_clips)
    if num_crops is not None:
        options.update(num_crops=num_crops)
    transform = video_sources.eval_transform(num_frames, **options)
    rng = np.random.default_rng(0)  # unused by the eval transform, which is deterministic
    views = [transform({"path": path, "label": 0, "video_index": 0, "clip_index": k, "crop_index": c}, rng)["frames"]
             for k in range(transform.num_clips) for c in range(transform.num_crops)]
    return np.stack(views)


def video_probabilities(exported: jax.export.Exported, views: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """Softmax averaged over views (V, T, H, W, 3) uint8 -> (K,); runs the artifact on batches of
    min(batch_size, V) views (the last one padded, so one compiled size serves every video)."""
    batch = min(batch_size, len(views))
    probs = []
    for start in range(0, len(views), batch):
        chunk = views[start:start + batch]
        padded = np.concatenate([chunk, np.zeros((batch - len(chunk), *chunk.shape[1:]), chunk.dtype)])
        probs.append(softmax(np.asarray(exported.call(padded), np.float64))[:len(chunk)])
    return np.concatenate(probs).mean(axis=0)


def top_k(probs: np.ndarray, class_names: Sequence[str], k: int = 5) -> list[tuple[str, float]]:
    """The k most probable (class name, probability), most probable first (ties: lower class index first)."""
    order = np.argsort(-probs, kind="stable")[:k]
    return [(class_names[i], float(probs[i])) for i in order]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vmp_jax.predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("--export", required=True, help="directory written by python -m vmp_jax.export")
    parser.add_argument("videos", nargs="+", metavar="VIDEO")
    parser.add_argument("--num_clips", type=int, default=None,
                        help="clips per video (default: data.eval_num_clips; runs on video files only)")
    parser.add_argument("--num_crops", type=int, default=None, choices=(1, 3),
                        help="crops per clip (default: data.eval_num_crops; runs on video files only)")
    parser.add_argument("--top_k", type=int, default=5, help="classes printed per video")
    args = parser.parse_args(argv)
    if args.top_k < 1 or (args.num_clips is not None and args.num_clips < 1):
        parser.error(f"--top_k={args.top_k}, --num_clips={args.num_clips}: expected positive numbers")
    try:
        exported = load_exported(os.path.join(args.export, EXPORTED))
        info = trained_run.read_json(os.path.join(args.export, trained_run.RUN_INFO))
        data_config = trained_run.load_config(args.export).data
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    class_names, num_frames, frame_size = info["class_names"], int(info["num_frames"]), tuple(info["frame_size"])
    failed = 0
    for path in args.videos:
        try:
            views = video_views(path, data_config, num_frames, frame_size, args.num_clips, args.num_crops)
        except (FileNotFoundError, ValueError) as e:  # video.VideoError is a ValueError
            print(f"error: {e}", file=sys.stderr)
            failed += 1
            continue
        probs = video_probabilities(exported, views)
        print(f"{path} ({len(views)} view{'s' if len(views) > 1 else ''}):")
        for rank, (name, p) in enumerate(top_k(probs, class_names, args.top_k), 1):
            print(f"  {rank}. {name:<24} {p:.3f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
