"""Draws what the motion prompt layer does to a video, time step by time step (frames, D, A, prompts, A(D)).

    python -m vmp_jax.visualize VIDEO --workdir DIR --out FILE.png   # a trained run's parameters, luma, PN, T, H x W
    python -m vmp_jax.visualize VIDEO --m M --n N --out FILE.gif     # the paper's sigmoid with these m, n

For each time step t = 1..T of a clip of T+1 frames the figure shows four panels, all computed by the training
code path (`data.transforms.standardize`, then `motion_prompt.motion_prompts`, the function the layer calls):

  frame       X_{t+1}, the later frame of the pair (the one the prompt multiplies), resized and cropped, uint8
  difference  D_t = G(X_{t+1}) - G(X_t), the signed luma difference in [-1, 1]; diverging colours with
              symmetric limits +-max|D| over the clip (red: the pixel got brighter)
  attention   A_t = PN(D_t) in [0, 1]
  prompt      P_t = A_t * standardised X_{t+1}, the backbone's input, shown un-standardised: P_t std + mean =
              mean + A_t (x - mean). Zero attention shows as the mean grey (0.45), the backbone's zero, not black.

and the curve A(D), D in [-1, 1], of the parameters (`pn_attention`) over a histogram of D (log counts), with the
learned coefficients (slope a and shift b for the sigmoid) in its title. Per-pixel parameters give one curve per
pixel: the plot shows their mean, with a band from the 10th to the 90th percentile over pixels, and the mean
coefficients.

The suffix of --out picks the output: `.png` is one grid (columns = time steps, rows = the four panels, the curve
on the right with the histogram of the whole clip); `.gif` has one frame per time step, looping (the four panels
side by side, then the curve with the histogram of that step's D). Sizes in pixels: `image_size(...)`; a panel is
1.5 inches high in the grid, 2 in a GIF frame (--dpi pixels per inch).

Frames: T+1 frames `--start`, `--start + --stride`, ... of the file (indices at the file's own frame rate), resized
to cover H x W keeping the aspect ratio (for square sizes: the short side becomes H) and centre-cropped, then
standardised as in training. This shows the whole centre of the frame at the training resolution; a run trained on
videos saw crops of a larger resize (data.eval_short_side). With --workdir: T, H x W, luma and PN of the run, and
stride data.sampling_rate for runs trained on video files (1 on procedural data); with --m/--n: T = 8, 160 x 160,
stride 1. --num_frames T and --size H,W (S: S x S; 0: the video's own size) override them, except that a per-pixel
run's (H, W) maps fix its size.

A mistake in the command line (or a missing file) prints one line `error: ...` and exits with status 2; nothing is
written then. The numbers are computed in vmp_jax.visualize_panels, the figure drawn in vmp_jax.visualize_figure.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from absl import flags

from vmp_jax import cli, motion_prompt

# The numbers and the drawing are modules of their own; their names are importable from here as before.
from vmp_jax.visualize_figure import (
    BOTTOM,
    COLORBAR,
    CURVE,
    GAP,
    LEFT,
    PANEL,
    QUANTUM,
    ROW_LABELS,
    TOP,
    Layout,
    draw,
    draw_curve,
    image_size,
    layout,
    render,
)
from vmp_jax.visualize_panels import (
    CURVE_D,
    DEFAULT_NUM_STEPS,
    DEFAULT_SIZE,
    Curve,
    Panels,
    Setting,
    attention_curve,
    clip_indices,
    compute_panels,
    curve_title,
    prompt_image,
    read_clip,
    setting_from_m_n,
    setting_from_run,
)

# The panels' and the figure's names stay importable from here, where they lived before the split.
__all__ = [
    "BOTTOM",
    "COLORBAR",
    "CURVE",
    "CURVE_D",
    "DEFAULT_NUM_STEPS",
    "DEFAULT_SIZE",
    "FORMATS",
    "GAP",
    "LEFT",
    "PANEL",
    "QUANTUM",
    "ROW_LABELS",
    "TOP",
    "Curve",
    "Layout",
    "Panels",
    "Setting",
    "attention_curve",
    "check_paths",
    "clip_indices",
    "compute_panels",
    "curve_title",
    "draw",
    "draw_curve",
    "image_size",
    "layout",
    "main",
    "prompt_image",
    "read_clip",
    "render",
    "setting_from_m_n",
    "setting_from_run",
    "visualize",
]

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


def _define_flags(flag_values: flags.FlagValues, argv: Sequence[str] | None = None) -> None:
    define = dict(flag_values=flag_values)
    flags.DEFINE_string("out", None, "FILE.png (grid) or FILE.gif (one frame per time step).", required=True, **define)
    flags.DEFINE_string("workdir", None, "A train.py run: its VMP parameters, luma, PN, T and frame size.", **define)
    flags.DEFINE_integer("step", None, "Checkpoint step of --workdir (default: the latest).", **define)
    flags.DEFINE_float("m", None, "The paper's m (with --n): slope a = 5 / (0.45 |tanh m| + 0.1).", **define)
    flags.DEFINE_float("n", None, "The paper's n (with --m): shift b = 0.6 tanh n.", **define)
    flags.DEFINE_enum("luma", None, sorted(motion_prompt.LUMA_WEIGHTS), "With --m/--n (default: rgb).", **define)
    flags.DEFINE_integer(
        "num_frames",
        None,
        f"T, the number of prompts; T+1 frames are read (default: the run's, else {DEFAULT_NUM_STEPS}).",
        **define,
    )
    flags.DEFINE_list(
        "size",
        None,
        "H,W, or S for S x S, or 0 for the video's size (default: the run's, else "
        f"{DEFAULT_SIZE[0]},{DEFAULT_SIZE[1]}).",
        **define,
    )
    flags.DEFINE_integer("start", 0, "First frame (index in the file).", **define)
    flags.DEFINE_integer(
        "stride",
        None,
        "Frames between clip frames (default: the run's data.sampling_rate for video data, else 1).",
        **define,
    )
    flags.DEFINE_integer("dpi", 100, "Pixels per inch; a panel is 1.5 inches high (2 in a GIF frame).", **define)
    flags.DEFINE_float("fps", 4.0, "GIF frames per second.", **define)


def _size(values: Sequence[str] | None) -> tuple[int, int] | None:
    """--size H,W | S | 0 -> (H, W), (S, S) or (0, 0)."""
    if values is None:
        return None
    try:
        pixels = [int(v) for v in values]
    except ValueError:
        pixels = []
    if len(pixels) not in (1, 2):
        raise cli.UsageError(f"--size takes H,W, S or 0; got {','.join(values)!r}")
    return tuple((pixels * 2)[:2])


def _command(argv: list[str], flag_values: flags.FlagValues) -> None:
    if len(argv) != 2:
        raise cli.UsageError(f"expected one VIDEO, got {len(argv) - 1}: {argv[1:]}")
    video_path, out = argv[1], flag_values.out
    workdir, m, n = flag_values.workdir, flag_values.m, flag_values.n
    if (workdir is None) == (m is None and n is None):
        raise cli.UsageError("give either --workdir DIR or --m M --n N")
    if workdir is None and (m is None or n is None):
        raise cli.UsageError("--m and --n go together")
    if workdir is not None and flag_values.luma is not None:
        raise cli.UsageError("--luma is for --m/--n; a run uses its own (config.model.vmp.luma)")
    size = _size(flag_values.size)
    check_paths(video_path, out)  # before the slow part
    setting = (
        setting_from_run(workdir, flag_values.step)
        if workdir is not None
        else setting_from_m_n(m, n, flag_values.luma or "rgb")
    )
    visualize(
        video_path,
        out,
        setting,
        num_steps=flag_values.num_frames,
        size=size,
        start=flag_values.start,
        stride=flag_values.stride,
        dpi=flag_values.dpi,
        fps=flag_values.fps,
    )
    cli.say(f"wrote {out}")


def main(argv: Sequence[str]) -> int:
    """`python -m vmp_jax.visualize ARGV...` in this process; returns the exit status (2: a user error)."""
    return cli.call(_command, _define_flags, argv, prog="python -m vmp_jax.visualize")


if __name__ == "__main__":
    cli.run(_command, _define_flags)
