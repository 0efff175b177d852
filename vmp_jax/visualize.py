"""`python -m vmp_jax.visualize`: what the motion prompt layer does to a video, time step by time step.

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
stride 1. --num_frames T and --size H W (S: S x S; 0: the video's own size) override them, except that a per-pixel
run's (H, W) maps fix its size.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Mapping, NamedTuple, Sequence

import numpy as np

from vmp_jax import motion_prompt
from vmp_jax.data import transforms, video

FORMATS = (".png", ".gif")
DEFAULT_NUM_STEPS = 8
DEFAULT_SIZE = (160, 160)
CURVE_D = np.linspace(-1.0, 1.0, 401, dtype=np.float32)
ROW_LABELS = ("frame $X_{t+1}$", "difference $D_t$", "attention $A_t$", "prompt $P_t$")


@dataclasses.dataclass(frozen=True)
class Setting:
    """What turns frames into prompts (the layer's parameters and options) and the clip shape to show."""

    params: Mapping[str, np.ndarray]  # PN_PARAMS[pn] -> float32 scalars or (H, W) maps
    luma: str
    pn: str
    num_steps: int                    # T
    frame_size: tuple[int, int]       # (H, W)
    stride: int
    label: str                        # where the parameters come from, for the figure's title


def setting_from_run(workdir: str, step: int | None = None) -> Setting:
    """The VMP layer of checkpoint `step` (None: the latest) of the train.py run in `workdir`."""
    from vmp_jax import trained_run  # orbax and the model code: only needed here

    run = trained_run.load_run(workdir, step)
    if not run.config.model.use_vmp:
        raise ValueError(f"{workdir} was trained without VMP (model.use_vmp=False): there are no prompts to show")
    params = {k: np.asarray(v, np.float32) for k, v in run.variables["params"]["vmp"].items()}
    stride = 1 if run.config.data.source == "procedural" else int(run.config.data.sampling_rate)
    return Setting(params, run.config.model.vmp.luma, run.config.model.vmp.pn, run.num_frames - 1,
                   tuple(run.frame_size), stride, f"run {os.path.basename(run.workdir)}, step {run.step}")


def setting_from_m_n(m: float, n: float, luma: str = "rgb") -> Setting:
    """The paper's sigmoid with scalar m, n; T = 8 steps at 160 x 160, consecutive frames."""
    motion_prompt.luma_weights(luma)
    return Setting({"m": np.float32(m), "n": np.float32(n)}, luma, "sigmoid", DEFAULT_NUM_STEPS, DEFAULT_SIZE, 1,
                   f"m = {m:g}, n = {n:g}")


# ----------------------------------------------------------------------------------------------- the panels


class Panels(NamedTuple):
    """One clip through the VMP layer (numpy)."""

    frames: np.ndarray       # (T+1, H, W, 3) uint8, before standardisation
    differences: np.ndarray  # (T, H, W) float32, D_t
    attention: np.ndarray    # (T, H, W) float32, A_t
    prompts: np.ndarray      # (T, H, W, 3) float32, P_t as the backbone receives it (standardised)


class Curve(NamedTuple):
    """A(D) over a grid of D: the curve (mean over pixels when per-pixel) and its 10-90% band over pixels."""

    d: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    coefficients: dict[str, float]  # pn_coefficients, averaged over pixels when per-pixel
    per_pixel: bool


def clip_indices(num_available: int, num_frames: int, start: int = 0, stride: int = 1) -> np.ndarray:
    """(num_frames,) frame indices start, start + stride, ...; ValueError if they run past the video's end."""
    if num_frames < 2 or start < 0 or stride < 1:
        raise ValueError(f"need num_frames >= 2, start >= 0, stride >= 1; got {num_frames}, {start}, {stride}")
    indices = start + stride * np.arange(num_frames)
    if indices[-1] >= num_available:
        raise ValueError(f"{num_frames} frames from frame {start} every {stride} need frame {indices[-1]}, but the "
                         f"video has {num_available} frames; lower --start, --stride or --num_frames")
    return indices


def read_clip(path: str, num_frames: int, size: tuple[int, int], start: int = 0,
              stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(frames (num_frames, H, W, 3) uint8, their indices in the file); size (0, 0) keeps the video's size."""
    indices = clip_indices(video.probe(path).num_frames, num_frames, start, stride)
    frames = video.read_frames(path, indices)
    if tuple(size) != (0, 0):
        frames = transforms.cover_and_centre_crop(frames, *size)
    return frames, indices


def compute_panels(frames: np.ndarray, params: Mapping[str, np.ndarray], luma: str = "rgb",
                   pn: str = "sigmoid") -> Panels:
    """frames: (T+1, H, W, 3) uint8 -> Panels, standardised and prompted exactly as in training."""
    x = transforms.standardize(frames)[None]
    out = motion_prompt.motion_prompts(x, params, luma, pn=pn)
    d = motion_prompt.frame_differences(motion_prompt.luma(x, motion_prompt.luma_weights(luma)))
    return Panels(frames, np.asarray(d[0]), np.asarray(out.attention[0]), np.asarray(out.prompts[0]))


def prompt_image(prompts: np.ndarray, mean: float = motion_prompt.DEFAULT_MEAN,
                 std: float = motion_prompt.DEFAULT_STD) -> np.ndarray:
    """Prompts un-standardised for display, P std + mean = mean + A (x - mean). (..., 3) float -> uint8."""
    return np.clip(np.rint((np.asarray(prompts) * std + mean) * 255.0), 0, 255).astype(np.uint8)


def attention_curve(params: Mapping[str, np.ndarray], pn: str = "sigmoid", d: np.ndarray = CURVE_D) -> Curve:
    """A(D) of the parameters by `pn_attention`, one curve per pixel for (H, W) maps, summarised over pixels."""
    per_pixel = any(np.ndim(v) > 0 for v in params.values())
    grid = d.reshape((-1, 1, 1) if per_pixel else (-1,))  # broadcasts against (H, W) maps
    curves = np.asarray(motion_prompt.pn_attention(grid, params, pn)).reshape(len(d), -1)
    low, high = np.percentile(curves, [10, 90], axis=1)
    coefficients = {k: float(np.mean(v)) for k, v in motion_prompt.pn_coefficients(params, pn).items()}
    return Curve(d, curves.mean(axis=1), low, high, coefficients, per_pixel)


def curve_title(curve: Curve, pn: str) -> str:
    values = ", ".join(f"{motion_prompt.PN_COEFFICIENT_SYMBOLS.get(k, k)} = {v:.3g}" for k, v in curve.coefficients.items())
    formula = "A = σ(a (D − b))" if pn == "sigmoid" else f"A = {pn}(|D|)"
    if curve.per_pixel:
        return f"{formula}, per pixel: mean and 10–90%\nof pixels; mean {values}"
    return f"{formula}\n{values}"


# ----------------------------------------------------------------------------------------------- drawing

# Figure layout in inches. The PNG is a grid (rows = the four kinds of panel, columns = time steps, colourbars
# right of the D and A rows); a GIF frame is a strip (the four panels side by side, colourbars under D and A).
# The curve is on the right of both. The figure's width and height are rounded up to QUANTUM so that, for any
# integer dpi, width * dpi is a whole number and the image is exactly `image_size` pixels (Agg truncates).
PANEL = {"grid": 1.5, "strip": 2.0}  # panel height; width = height * aspect ratio (clipped to [0.5, 3])
GAP = {"grid": 0.08, "strip": 0.15}
LEFT, TOP = 0.35, 0.7
BOTTOM = {"grid": 0.3, "strip": 0.75}
COLORBAR = (0.1, 0.12, 0.5)          # gap before, thickness, room for tick labels after
CURVE = (0.75, 3.4, 0.85)            # room for the y label, width, room for the histogram's axis
QUANTUM = 0.25


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where the axes go; `panel(kind, column)` etc. return figure fractions [left, bottom, width, height]."""

    width: float                     # figure size, inches
    height: float
    panel_width: float
    num_columns: int                 # time steps shown (grid) or 1 (strip)
    strip: bool

    def _rect(self, left: float, bottom: float, width: float, height: float) -> list[float]:
        return [left / self.width, bottom / self.height, width / self.width, height / self.height]

    @property
    def _panel_height(self) -> float:
        return PANEL["strip" if self.strip else "grid"]

    def _cell(self, kind: int, column: int) -> tuple[float, float]:
        """(left, bottom) of a panel, inches."""
        if self.strip:
            return LEFT + kind * (self.panel_width + GAP["strip"]), BOTTOM["strip"]
        return (LEFT + column * (self.panel_width + GAP["grid"]),
                BOTTOM["grid"] + (3 - kind) * (PANEL["grid"] + GAP["grid"]))

    def panel(self, kind: int, column: int) -> list[float]:
        return self._rect(*self._cell(kind, column), self.panel_width, self._panel_height)

    def colorbar(self, kind: int) -> list[float]:
        left, bottom = self._cell(kind, self.num_columns - 1)
        if self.strip:
            return self._rect(left, bottom - COLORBAR[0] - COLORBAR[1], self.panel_width, COLORBAR[1])
        return self._rect(left + self.panel_width + COLORBAR[0], bottom, COLORBAR[1], PANEL["grid"])

    def curve(self) -> list[float]:
        panels_right, bottom = self._cell(3 if self.strip else 0, self.num_columns - 1)
        left = panels_right + self.panel_width + CURVE[0] + (0.0 if self.strip else sum(COLORBAR))
        if self.strip:
            return self._rect(left, bottom, CURVE[1], PANEL["strip"])
        grid_height = 4 * PANEL["grid"] + 3 * GAP["grid"]
        height = min(grid_height - 1.0, CURVE[1])  # room for the title above and the x label below
        return self._rect(left, BOTTOM["grid"] + 0.45 + (grid_height - 1.0 - height) / 2, CURVE[1], height)


def layout(frame_size: Sequence[int], num_steps: int, animated: bool = False) -> Layout:
    """The PNG grid of `num_steps` time steps, or (animated) the strip of one GIF frame, for frames (H, W)."""
    style = "strip" if animated else "grid"
    panel_width = PANEL[style] * float(np.clip(frame_size[1] / frame_size[0], 0.5, 3.0))
    columns = 4 if animated else num_steps  # panels side by side
    width = LEFT + columns * (panel_width + GAP[style]) - GAP[style] + sum(CURVE)
    height = TOP + BOTTOM[style] + (PANEL["strip"] if animated else 4 * PANEL["grid"] + 3 * GAP["grid"])
    if not animated:
        width += sum(COLORBAR)
    round_up = lambda inches: float(QUANTUM * np.ceil(inches / QUANTUM))  # noqa: E731
    return Layout(round_up(width), round_up(height), panel_width, 1 if animated else num_steps, animated)


def image_size(frame_size: Sequence[int], num_steps: int, dpi: int, animated: bool = False) -> tuple[int, int]:
    """(width, height) in pixels of the PNG of `num_steps` time steps, or of each GIF frame (animated)."""
    lay = layout(frame_size, num_steps, animated)
    return int(lay.width * dpi), int(lay.height * dpi)


def draw(panels: Panels, curve: Curve, pn: str, steps: Sequence[int], frame_numbers: Sequence[int], title: str,
         dpi: int = 100, animated: bool = False):
    """A matplotlib Figure (no pyplot state): the PNG grid of time steps `steps` (0-based), or (animated) the GIF
    frame of the single step in `steps`; the curve's histogram is of D over `steps`."""
    from matplotlib.figure import Figure

    steps = list(steps)
    lay = layout(panels.frames.shape[1:3], len(steps), animated)
    fig = Figure(figsize=(lay.width, lay.height), dpi=dpi)
    limit = max(float(np.abs(panels.differences).max()), 1e-3)
    styles = ({}, dict(cmap="RdBu_r", vmin=-limit, vmax=limit), dict(cmap="magma", vmin=0.0, vmax=1.0), {})
    for column, t in enumerate(steps):
        pair = f"t = {t + 1}: frames {frame_numbers[t]}→{frame_numbers[t + 1]}"
        images = (panels.frames[t + 1], panels.differences[t], panels.attention[t], prompt_image(panels.prompts[t]))
        for kind, (image, style) in enumerate(zip(images, styles)):
            ax = fig.add_axes(lay.panel(kind, column))
            shown = ax.imshow(image, interpolation="nearest", **style)
            ax.set_xticks([])
            ax.set_yticks([])
            if animated:
                ax.set_title(ROW_LABELS[kind], fontsize=9)
            elif column == 0:
                ax.set_ylabel(ROW_LABELS[kind], fontsize=9)
            if kind == 0 and not animated:
                ax.set_title(pair, fontsize=8)
            if kind in (1, 2) and column == len(steps) - 1:
                bar = fig.colorbar(shown, cax=fig.add_axes(lay.colorbar(kind)),
                                   orientation="horizontal" if animated else "vertical")
                bar.ax.tick_params(labelsize=7)
    if animated:
        title = f"{title}\n{pair} of {len(frame_numbers) - 1}"
    fig.text(0.1 / lay.width, 1.0 - 0.12 / lay.height, title, fontsize=9, va="top")
    draw_curve(fig.add_axes(lay.curve()), curve, pn, panels.differences[steps], len(steps) == 1)
    return fig


def draw_curve(ax, curve: Curve, pn: str, differences: np.ndarray, one_step: bool) -> None:
    """A(D) in front of a histogram of `differences` (log counts, on a second y axis)."""
    hist = ax.twinx()
    counts, edges = np.histogram(differences, bins=80, range=(-1.0, 1.0))
    hist.stairs(counts, edges, fill=True, color="0.85")
    hist.set_yscale("log")
    hist.set_ylim(bottom=0.8)
    hist.set_ylabel(f"pixels with this D, {'this step' if one_step else 'all steps'} (log)", fontsize=8,
                    color="0.4")
    hist.tick_params(labelsize=7, colors="0.4")
    ax.set_zorder(hist.get_zorder() + 1)  # the curve in front of the histogram
    ax.patch.set_visible(False)
    if curve.per_pixel:
        ax.fill_between(curve.d, curve.low, curve.high, color="C1", alpha=0.3, linewidth=0)
    ax.plot(curve.d, curve.mean, color="C1", linewidth=2)
    if "shift_b" in curve.coefficients:
        ax.axvline(curve.coefficients["shift_b"], color="C1", linestyle=":", linewidth=1)
    ax.set_xlim(-1.0, 1.0)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("signed luma difference D", fontsize=8)
    ax.set_ylabel("attention A", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(curve_title(curve, pn), fontsize=8)


def render(fig) -> np.ndarray:
    """The figure's pixels, (height, width, 3) uint8."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


# ----------------------------------------------------------------------------------------------- the tool


def check_paths(video_path: str, out: str) -> str:
    """The output format, '.png' or '.gif', from the suffix of `out`; errors for another suffix or no video."""
    suffix = os.path.splitext(out)[1].lower()
    if suffix not in FORMATS:
        raise ValueError(f"--out {out!r}: the suffix must be one of {FORMATS} (PNG grid or animated GIF), "
                         f"got {suffix!r}")
    if not os.path.isfile(video_path):
        raise FileNotFoundError(f"video file not found: {video_path}")
    return suffix


def visualize(video_path: str, out: str, setting: Setting, *, num_steps: int | None = None,
              size: Sequence[int] | None = None, start: int = 0, stride: int | None = None, dpi: int = 100,
              fps: float = 4.0) -> Panels:
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
        raise ValueError(f"the per-pixel parameters are {maps.pop()} maps: they apply to frames of that size only, "
                         f"not {size}; leave --size out")
    frames, indices = read_clip(video_path, num_steps + 1, size, start, setting.stride if stride is None else stride)
    panels = compute_panels(frames, setting.params, setting.luma, setting.pn)
    curve = attention_curve(setting.params, setting.pn)
    height, width = frames.shape[1:3]
    title = (f"{os.path.basename(video_path)}: frames {indices[0]}–{indices[-1]} every {indices[1] - indices[0]}, "
             f"{height}×{width}, luma {setting.luma}  |  {setting.label}")
    draw_args = dict(panels=panels, curve=curve, pn=setting.pn, frame_numbers=indices, title=title, dpi=dpi)
    from PIL import Image

    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    if suffix == ".png":
        Image.fromarray(render(draw(steps=range(num_steps), **draw_args))).save(out, optimize=True)
    else:
        images = [Image.fromarray(render(draw(steps=[t], animated=True, **draw_args))) for t in range(num_steps)]
        images[0].save(out, save_all=True, append_images=images[1:], duration=int(round(1000 / fps)), loop=0)
    return panels


def parse_args(argv: Sequence[str] | None = None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    p = argparse.ArgumentParser(
        prog="python -m vmp_jax.visualize", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Frames, signed differences, attention maps and motion prompts of a video, and the attention "
                    "curve A(D), as a PNG grid or an animated GIF.", epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("video", help="a video file PyAV can decode")
    p.add_argument("--out", required=True, help="FILE.png (grid) or FILE.gif (one frame per time step)")
    p.add_argument("--workdir", help="a train.py run: its VMP parameters, luma, PN, T and frame size")
    p.add_argument("--step", type=int, help="checkpoint step of --workdir (default: the latest)")
    p.add_argument("--m", type=float, help="the paper's m (with --n): slope a = 5 / (0.45 |tanh m| + 0.1)")
    p.add_argument("--n", type=float, help="the paper's n (with --m): shift b = 0.6 tanh n")
    p.add_argument("--luma", choices=sorted(motion_prompt.LUMA_WEIGHTS), help="with --m/--n (default: rgb)")
    p.add_argument("--num_frames", type=int, help=f"T, the number of prompts; T+1 frames are read (default: the "
                   f"run's, else {DEFAULT_NUM_STEPS})")
    p.add_argument("--size", type=int, nargs="+", metavar="PIXELS",
                   help=f"H W, or S for S x S, or 0 for the video's size (default: the run's, else "
                        f"{DEFAULT_SIZE[0]} {DEFAULT_SIZE[1]})")
    p.add_argument("--start", type=int, default=0, help="first frame (index in the file)")
    p.add_argument("--stride", type=int, help="frames between clip frames (default: the run's "
                   "data.sampling_rate for video data, else 1)")
    p.add_argument("--dpi", type=int, default=100, help="pixels per inch; a panel is 1.5 inches high "
                   "(2 in a GIF frame)")
    p.add_argument("--fps", type=float, default=4.0, help="GIF frames per second")
    return p, p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    parser, args = parse_args(argv)
    if (args.workdir is None) == (args.m is None and args.n is None):
        parser.error("give either --workdir DIR or --m M --n N")
    if args.workdir is None and (args.m is None or args.n is None):
        parser.error("--m and --n go together")
    if args.workdir is not None and args.luma is not None:
        parser.error("--luma is for --m/--n; a run uses its own (config.model.vmp.luma)")
    if args.size is not None and len(args.size) not in (1, 2):
        parser.error(f"--size takes H W, S or 0; got {args.size}")
    size = None if args.size is None else (args.size * 2)[:2]
    try:
        check_paths(args.video, args.out)  # before the slow part
        setting = (setting_from_run(args.workdir, args.step) if args.workdir is not None
                   else setting_from_m_n(args.m, args.n, args.luma or "rgb"))
        visualize(args.video, args.out, setting, num_steps=args.num_frames, size=size, start=args.start,
                  stride=args.stride, dpi=args.dpi, fps=args.fps)
    except (FileNotFoundError, ValueError) as e:
        parser.error(str(e))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
