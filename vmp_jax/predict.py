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

from vmp_jax import bundle, cli
from vmp_jax.data.file_views import video_views
from vmp_jax.data.multiview import softmax
from vmp_jax.training import run_dir


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
    exported = bundle.load_exported(os.path.join(export, run_dir.EXPORTED))
    info = run_dir.read_run_info(export)
    data_config = run_dir.load_config(export).data
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
