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
A missing or unreadable video prints a line `error: VIDEO: what went wrong`; the others are still scored (exit
status 1). A missing or incomplete export is an error of the command line (exit status 2).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import jax
import numpy as np
from absl import flags

from vmp_jax import cli, trained_run
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


def video_views(
    path: str,
    data_config,
    num_frames: int,
    frame_size: Sequence[int],
    num_clips: int | None = None,
    num_crops: int | None = None,
) -> np.ndarray:
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
    views = [
        transform({"path": path, "label": 0, "video_index": 0, "clip_index": k, "crop_index": c}, rng)["frames"]
        for k in range(transform.num_clips)
        for c in range(transform.num_crops)
    ]
    return np.stack(views)


def video_probabilities(exported: jax.export.Exported, views: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """Softmax averaged over views (V, T, H, W, 3) uint8 -> (K,); runs the artifact on batches of
    min(batch_size, V) views (the last one padded, so one compiled size serves every video)."""
    batch = min(batch_size, len(views))
    probs = []
    for start in range(0, len(views), batch):
        chunk = views[start : start + batch]
        padded = np.concatenate([chunk, np.zeros((batch - len(chunk), *chunk.shape[1:]), chunk.dtype)])
        probs.append(softmax(np.asarray(exported.call(padded), np.float64))[: len(chunk)])
    return np.concatenate(probs).mean(axis=0)


def top_k(probs: np.ndarray, class_names: Sequence[str], k: int = 5) -> list[tuple[str, float]]:
    """The k most probable (class name, probability), most probable first (ties: lower class index first)."""
    order = np.argsort(-probs, kind="stable")[:k]
    return [(class_names[i], float(probs[i])) for i in order]


def failure_reason(error: Exception, path: str) -> str:
    """What went wrong with the video `path`, without the path (which the error line names once): the 'PATH: '
    prefixes that each layer adds, and the path PyAV or a 'not found' message ends with, are left out."""
    text = str(error)
    while text.startswith(f"{path}: "):
        text = text[len(path) + 2 :]
    return re.sub(rf": '?{re.escape(path)}'?(?=\)|$)", "", text)


def _define_flags(flag_values: flags.FlagValues, argv: Sequence[str] | None = None) -> None:
    define = dict(flag_values=flag_values)
    flags.DEFINE_string("export", None, "Directory written by python -m vmp_jax.export.", required=True, **define)
    flags.DEFINE_integer(
        "num_clips",
        None,
        "Clips per video (default: data.eval_num_clips; runs on video files only).",
        lower_bound=1,
        **define,
    )
    flags.DEFINE_enum(
        "num_crops",
        None,
        ["1", "3"],
        "Crops per clip (default: data.eval_num_crops; runs on video files only).",
        **define,
    )
    flags.DEFINE_integer("top_k", 5, "Classes printed per video.", lower_bound=1, **define)


def _command(argv: list[str], flag_values: flags.FlagValues) -> int:
    videos = argv[1:]
    if not videos:
        raise cli.UsageError("no VIDEO given; expected one or more video files after the flags")
    export = flag_values.export
    exported = load_exported(os.path.join(export, EXPORTED))
    info = trained_run.read_json(os.path.join(export, trained_run.RUN_INFO))
    data_config = trained_run.load_config(export).data
    class_names, num_frames, frame_size = info["class_names"], int(info["num_frames"]), tuple(info["frame_size"])
    num_crops = None if flag_values.num_crops is None else int(flag_values.num_crops)
    failed = 0
    for path in videos:
        try:
            views = video_views(path, data_config, num_frames, frame_size, flag_values.num_clips, num_crops)
        except (FileNotFoundError, ValueError) as e:  # video.VideoError is a ValueError
            cli.error(f"{path}: {failure_reason(e, path)}")
            failed += 1
            continue
        probs = video_probabilities(exported, views)
        lines = [f"{path} ({len(views)} view{'s' if len(views) > 1 else ''}):"]
        lines += [
            f"  {rank}. {name:<24} {p:.3f}"
            for rank, (name, p) in enumerate(top_k(probs, class_names, flag_values.top_k), 1)
        ]
        cli.say("\n".join(lines))
    return 1 if failed else 0


def main(argv: Sequence[str]) -> int:
    """`python -m vmp_jax.predict ARGV...` in this process; returns the exit status (1: a video failed, 2: a user
    error)."""
    return cli.call(_command, _define_flags, argv, prog="python -m vmp_jax.predict")


if __name__ == "__main__":
    cli.run(_command, _define_flags)
