"""The numbers of `python -m vmp_jax.visualize`: a clip through the VMP layer, and its attention curve A(D).

No plotting here (vmp_jax.visualize.figure draws): everything is computed by the training code path
(`data.transforms.standardize`, then `motion_prompt.motion_prompts`, the function the layer calls).

  Setting        what turns frames into prompts (the layer's parameters, luma, PN) and the clip shape to show,
                 from a trained run (`setting_from_run`) or the paper's m, n (`setting_from_m_n`)
  read_clip      T+1 frames of a video file, resized to cover H x W and centre-cropped
  compute_panels frames -> Panels: D_t, A_t and the prompts P_t, as the backbone receives them
  attention_curve A(D) over a grid of D (mean and 10-90% band over pixels for per-pixel parameters)
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from vmp_jax import cli, motion_prompt
from vmp_jax.data import builders as data_builders
from vmp_jax.data import transforms, video

DEFAULT_NUM_STEPS = 8
DEFAULT_SIZE = (160, 160)
CURVE_D = np.linspace(-1.0, 1.0, 401, dtype=np.float32)


@dataclasses.dataclass(frozen=True)
class Setting:
    """What turns frames into prompts (the layer's parameters and options) and the clip shape to show."""

    params: Mapping[str, np.ndarray]  # PN_PARAMS[pn] -> float32 scalars or (H, W) maps
    luma: str
    pn: str
    num_steps: int  # T
    frame_size: tuple[int, int]  # (H, W)
    stride: int
    label: str  # where the parameters come from, for the figure's title


def parse_size(values: Sequence[str] | None) -> tuple[int, int] | None:
    """The --size flag of visualize and explore: H,W | S | 0 -> (H, W), (S, S) or (0, 0); None stays None."""
    if values is None:
        return None
    try:
        pixels = [int(v) for v in values]
    except ValueError:
        pixels = []
    if len(pixels) not in (1, 2):
        raise cli.UsageError(f"--size takes H,W, S or 0; got {','.join(values)!r}")
    return tuple((pixels * 2)[:2])


def setting_from_run(workdir: str, step: int | None = None) -> Setting:
    """The VMP layer of checkpoint `step` (None: the latest) of the train.py run in `workdir`, or of the inference
    bundle there (written by `vmp_jax.export` or `vmp_jax.convert`; `step` does not apply)."""
    from vmp_jax import bundle  # orbax and the model code: only needed here
    from vmp_jax.training import run_dir, trained_run

    run = bundle.load_bundle(workdir) if run_dir.is_export(workdir) else trained_run.load_run(workdir, step)
    if not run.config.model.use_vmp:
        raise ValueError(f"{workdir} was trained without VMP (model.use_vmp=False): there are no prompts to show")
    params = {k: np.asarray(v, np.float32) for k, v in run.variables["params"]["vmp"].items()}
    return Setting(
        params,
        run.config.model.vmp.luma,
        run.config.model.vmp.pn,
        run.num_frames - 1,
        tuple(run.frame_size),
        data_builders.frame_stride(run.config.data),
        f"run {os.path.basename(run.workdir)}, step {run.step}",
    )


def setting_from_m_n(m: float, n: float, luma: str = "rgb") -> Setting:
    """The paper's sigmoid with scalar m, n; T = 8 steps at 160 x 160, consecutive frames."""
    motion_prompt.luma_weights(luma)
    return Setting(
        {"m": np.float32(m), "n": np.float32(n)},
        luma,
        "sigmoid",
        DEFAULT_NUM_STEPS,
        DEFAULT_SIZE,
        1,
        f"m = {m:g}, n = {n:g}",
    )


class Panels(NamedTuple):
    """One clip through the VMP layer (numpy)."""

    frames: np.ndarray  # (T+1, H, W, 3) uint8, before standardisation
    differences: np.ndarray  # (T, H, W) float32, D_t
    attention: np.ndarray  # (T, H, W) float32, A_t
    prompts: np.ndarray  # (T, H, W, 3) float32, P_t as the backbone receives it (standardised)


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
        raise ValueError(
            f"{num_frames} frames from frame {start} every {stride} need frame {indices[-1]}, but the "
            f"video has {num_available} frames; lower --start, --stride or --num_frames"
        )
    return indices


def read_clip(
    path: str, num_frames: int, size: tuple[int, int], start: int = 0, stride: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """(frames (num_frames, H, W, 3) uint8, their indices in the file); size (0, 0) keeps the video's size."""
    indices = clip_indices(video.probe(path).num_frames, num_frames, start, stride)
    frames = video.read_frames(path, indices)
    if tuple(size) != (0, 0):
        frames = transforms.cover_and_centre_crop(frames, *size)
    return frames, indices


def compute_panels(
    frames: np.ndarray, params: Mapping[str, np.ndarray], luma: str = "rgb", pn: str = "sigmoid"
) -> Panels:
    """frames: (T+1, H, W, 3) uint8 -> Panels, standardised and prompted exactly as in training."""
    x = transforms.standardize(frames)[None]
    out = motion_prompt.motion_prompts(x, params, luma, pn=pn)
    d = motion_prompt.frame_differences(motion_prompt.luma(x, motion_prompt.luma_weights(luma)))
    return Panels(frames, np.asarray(d[0]), np.asarray(out.attention[0]), np.asarray(out.prompts[0]))


def prompt_image(
    prompts: np.ndarray, mean: float = motion_prompt.DEFAULT_MEAN, std: float = motion_prompt.DEFAULT_STD
) -> np.ndarray:
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
    symbols = motion_prompt.PN_COEFFICIENT_SYMBOLS
    values = ", ".join(f"{symbols.get(k, k)} = {v:.3g}" for k, v in curve.coefficients.items())
    formula = "A = σ(a (D − b))" if pn == "sigmoid" else f"A = {pn}(|D|)"
    if curve.per_pixel:
        return f"{formula}, per pixel: mean and 10–90%\nof pixels; mean {values}"
    return f"{formula}\n{values}"
