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
written then. The numbers are computed in vmp_jax.visualize.panels, the figure drawn in
vmp_jax.visualize.figure and written by vmp_jax.visualize.render.
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import flags

from vmp_jax import cli, motion_prompt
from vmp_jax.visualize.panels import DEFAULT_NUM_STEPS, DEFAULT_SIZE, parse_size, setting_from_m_n, setting_from_run
from vmp_jax.visualize.render import check_paths, visualize


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
    size = parse_size(flag_values.size)
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
