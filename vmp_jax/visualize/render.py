"""Writes the visualisation of a clip to a file: one PNG grid, or an animated GIF with a frame per time step
(`python -m vmp_jax.visualize` describes the panels)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from vmp_jax.visualize.figure import draw, render
from vmp_jax.visualize.panels import Panels, Setting, attention_curve, compute_panels, read_clip

FORMATS = (".png", ".gif")


def check_paths(video_path: str, out: str) -> str:
    """The output format, '.png' or '.gif', from the suffix of `out`; errors for another suffix or no video."""
    suffix = os.path.splitext(out)[1].lower()
    if suffix not in FORMATS:
        raise ValueError(
            f"--out {out!r}: the suffix must be one of {FORMATS} (PNG grid or animated GIF), got {suffix!r}"
        )
    if not os.path.isfile(video_path):
        raise FileNotFoundError(f"video file not found: {video_path}")
    return suffix


def visualize(
    video_path: str,
    out: str,
    setting: Setting,
    *,
    num_steps: int | None = None,
    size: Sequence[int] | None = None,
    start: int = 0,
    stride: int | None = None,
    dpi: int = 100,
    fps: float = 4.0,
) -> Panels:
    """Writes the figure of `setting` on the clip of `video_path` to `out` (.png or .gif); returns the panels.

    num_steps (T), size ((H, W); (0, 0): the video's own) and stride default to the setting's.
    """
    suffix = check_paths(video_path, out)
    if dpi < 1 or fps <= 0:
        raise ValueError(f"dpi must be >= 1 and fps > 0, got dpi={dpi}, fps={fps}")
    num_steps = setting.num_steps if num_steps is None else num_steps
    if num_steps < 1:
        raise ValueError(f"the number of time steps T (--num_frames) must be >= 1, got {num_steps}")
    size = tuple(setting.frame_size if size is None else size)
    if len(size) != 2 or (size != (0, 0) and min(size) < 1):
        raise ValueError(f"size must be (H, W) with H, W >= 1, or (0, 0) for the video's own; got {size}")
    maps = {tuple(np.shape(v)) for v in setting.params.values()} - {()}
    if maps and maps != {size}:
        raise ValueError(
            f"the per-pixel parameters are {maps.pop()} maps: they apply to frames of that size only, "
            f"not {size}; leave --size out"
        )
    frames, indices = read_clip(video_path, num_steps + 1, size, start, setting.stride if stride is None else stride)
    panels = compute_panels(frames, setting.params, setting.luma, setting.pn)
    curve = attention_curve(setting.params, setting.pn)
    height, width = frames.shape[1:3]
    title = (
        f"{os.path.basename(video_path)}: frames {indices[0]}–{indices[-1]} every {indices[1] - indices[0]}, "
        f"{height}×{width}, luma {setting.luma}  |  {setting.label}"
    )
    draw_args = dict(panels=panels, curve=curve, pn=setting.pn, frame_numbers=indices, title=title, dpi=dpi)
    from PIL import Image

    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    if suffix == ".png":
        Image.fromarray(render(draw(steps=range(num_steps), **draw_args))).save(out, optimize=True)
    else:
        images = [Image.fromarray(render(draw(steps=[t], animated=True, **draw_args))) for t in range(num_steps)]
        images[0].save(out, save_all=True, append_images=images[1:], duration=int(round(1000 / fps)), loop=0)
    return panels
