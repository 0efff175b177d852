"""An interactive slope/shift explorer: one self-contained HTML page to choose VMP's initialisation on a video.

    python -m vmp_jax.explore VIDEO --out FILE.html                  # starts at configs/default.py's init
    python -m vmp_jax.explore VIDEO --workdir DIR --out FILE.html    # a run's clip shape, luma, PN and init;
                                                                     # its learned coefficients are marked

The page needs no server and no network: it embeds the clip's T+1 frames (uint8) and its T signed luma differences
D (float32, exactly `frame_differences(luma(standardize(frames)))`, the numbers the layer sees), both gzipped and
base64-encoded, and decompresses them in the browser (DecompressionStream). As its sliders move, the page
recomputes in JavaScript what `motion_prompt.pn_attention` computes -- A = sigmoid(a (D - b)) with
a = 5 / (0.45 |tanh m| + 0.1), b = 0.6 tanh n, or one of the Koniusz & Zhang PNs with its coefficient -- for the
whole clip, and shows:

  panels      the frame X_{t+1}, D_t (RdBu_r, limits +-max|D| of the clip), A_t (magma, 0..1) and the prompt
              mean + A_t (x - mean) of time step t, as `python -m vmp_jax.visualize` draws them
  curve       A(D) over the histogram of the clip's D (log counts); the 10-90% band (and median) of A(D) over
              INIT_DRAWS draws from the init distribution N(mean, std^2) of m and n (or of the log coefficient);
              with --workdir the run's learned curve, dashed
  statistics  for step t and for the clip: the fraction of pixels with A > 0.5, the mean of A, and the mean of A on
              the moving pixels (in each step the MOVING_FRACTION of pixels with the largest |D|, ties included);
              and the temporal variation V = sum (A_{t+1} - A_t)^2 / ((T-1) H W), the regulariser of training
  flags       `--config.model.vmp.*` overrides that make train.py / an ablation setting start from these values

Frames are sampled as in `python -m vmp_jax.visualize` (same flags: --start, --stride, --num_frames, --size; with
--workdir the run's T, H x W and stride). A per-pixel run's learned maps are shown by their mean curve; the D of the
page does not depend on the parameters, so any --size works. A mistake in the command line, a missing file or a
file that is not a long enough video prints one line `error: ...`, exits with status 2 and writes nothing.
"""

from __future__ import annotations

import base64
import gzip
import json
import math
import os
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

import numpy as np
from absl import flags

from vmp_jax import cli, motion_prompt
from vmp_jax.training import run_dir
from vmp_jax.visualize.panels import (  # the same clip, numbers and --size syntax as visualize
    DEFAULT_NUM_STEPS,
    DEFAULT_SIZE,
    Setting,
    compute_panels,
    parse_size,
    read_clip,
    setting_from_m_n,
    setting_from_run,
)

SUFFIXES = (".html", ".htm")
MOVING_FRACTION = 0.05  # "moving pixels": this fraction of each step's pixels, those with the largest |D|
INIT_DRAWS = 256
# The page's starting point without --workdir: configs/default.py's initialisation of the layer.
DEFAULT_INIT = {
    "m_init_mean": 0.0,
    "m_init_std": 0.1,
    "n_init_mean": 0.5,
    "n_init_std": 0.1,
    "pn_init_value": 0.0,
    "pn_init_log_std": 0.0,
}
TEMPLATE = "explore_page.html"
PLACEHOLDER = "__VMP_DATA__"


def check_paths(video_path: str, out: str) -> None:
    if os.path.splitext(out)[1].lower() not in SUFFIXES:
        raise ValueError(f"--out {out!r}: the page is an HTML file, the suffix must be one of {SUFFIXES}")
    if not os.path.isfile(video_path):
        raise FileNotFoundError(f"video file not found: {video_path}")


def packed(array: np.ndarray) -> str:
    """The bytes of a C-order array, gzipped (reproducibly: no time stamp) and base64-encoded."""
    return base64.b64encode(gzip.compress(np.ascontiguousarray(array).tobytes(), 9, mtime=0)).decode("ascii")


def colormap_lut(name: str) -> list[list[int]]:
    """256 RGB uint8 colours of a matplotlib colormap: index round(255 x) for x in [0, 1]."""
    import matplotlib  # pylint: disable=import-outside-toplevel

    return np.rint(matplotlib.colormaps[name](np.arange(256))[:, :3] * 255).astype(int).tolist()


def learned_values(params: Mapping[str, np.ndarray], pn: str, label: str = "") -> dict[str, Any]:
    """A run's layer parameters as the page marks them: the PN, its coefficients and raw parameters (means over
    pixels for per-pixel maps), and whether they were per pixel."""
    coefficients = motion_prompt.pn_coefficients(params, pn)
    return {
        "pn": pn,
        "coefficients": {k: float(np.mean(v)) for k, v in coefficients.items()},
        "params": {k: float(np.mean(v)) for k, v in params.items()},
        "per_pixel": any(np.ndim(v) > 0 for v in params.values()),
        "label": label,
    }


def page_data(
    frames: np.ndarray,
    d: np.ndarray,
    *,
    pn: str,
    init: Mapping[str, float],
    title: str,
    frame_numbers: Sequence[int],
    learned: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything the page shows, as JSON. frames: (T+1, H, W, 3) uint8; d: (T, H, W) float32."""
    frames = np.asarray(frames)
    d = np.asarray(d)
    if (
        frames.dtype != np.uint8
        or d.dtype != np.float32
        or frames.shape[:1] != (d.shape[0] + 1,)
        or frames.shape[1:3] != d.shape[1:]
    ):
        raise ValueError(
            f"need frames (T+1, H, W, 3) uint8 and D (T, H, W) float32, got {frames.shape} "
            f"{frames.dtype} and {d.shape} {d.dtype}"
        )
    motion_prompt.check_pn(pn)
    return {
        "title": title,
        "T": int(d.shape[0]),
        "H": int(d.shape[1]),
        "W": int(d.shape[2]),
        "frame_numbers": [int(i) for i in frame_numbers],
        "frames": packed(frames),
        "D": packed(d.astype("<f4")),
        "pn": pn,
        "init": {k: float(v) for k, v in init.items()},
        "learned": learned,
        "mean": motion_prompt.DEFAULT_MEAN,
        "moving_fraction": MOVING_FRACTION,
        "init_draws": INIT_DRAWS,
        "pn_default": motion_prompt.PN_DEFAULT_COEFFICIENT,
        "symbols": motion_prompt.PN_COEFFICIENT_SYMBOLS,
        "magma": colormap_lut("magma"),
        "rdbu": colormap_lut("RdBu_r"),
    }


def render_page(data: Mapping[str, Any]) -> str:
    """The HTML page: the template with `data` as JSON in it ('<' escaped, so no string can end the script)."""
    text = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")
    template = resources.files("vmp_jax").joinpath(TEMPLATE).read_text(encoding="utf-8")
    head, placeholder, tail = template.partition(PLACEHOLDER)
    return head + text + tail


def explore(
    video_path: str,
    out: str,
    setting: Setting,
    *,
    init: Mapping[str, float],
    learned: Mapping[str, Any] | None = None,
    num_steps: int | None = None,
    size: Sequence[int] | None = None,
    start: int = 0,
    stride: int | None = None,
) -> dict[str, Any]:
    """Writes the page for the clip of `video_path` to `out`; returns its data (D and frames as numpy too).

    `setting` gives the luma, the PN the page starts with and the default clip shape; num_steps (T), size
    ((H, W); (0, 0): the video's own) and stride override it.
    """
    check_paths(video_path, out)
    num_steps = setting.num_steps if num_steps is None else num_steps
    if num_steps < 1:
        raise ValueError(f"the number of time steps T (--num_frames) must be >= 1, got {num_steps}")
    size = tuple(setting.frame_size if size is None else size)
    if len(size) != 2 or (size != (0, 0) and min(size) < 1):
        raise ValueError(f"size must be (H, W) with H, W >= 1, or (0, 0) for the video's own; got {size}")
    frames, indices = read_clip(video_path, num_steps + 1, size, start, setting.stride if stride is None else stride)
    # D does not depend on the parameters: any scalar ones give the layer's D (per-pixel maps would fix the size).
    d = compute_panels(frames, {"m": np.float32(0.0), "n": np.float32(0.0)}, setting.luma).differences
    height, width = frames.shape[1:3]
    title = (
        f"{os.path.basename(video_path)}: frames {indices[0]}–{indices[-1]} every {indices[1] - indices[0]}, "
        f"{height}×{width}, luma {setting.luma}"
    )
    data = page_data(frames, d, pn=setting.pn, init=init, title=title, frame_numbers=indices, learned=learned)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        f.write(render_page(data))
    return {**data, "frames": frames, "D": d}


def _define_flags(flag_values: flags.FlagValues, argv: Sequence[str] | None = None) -> None:
    define = dict(flag_values=flag_values)
    flags.DEFINE_string("out", None, "FILE.html, the page.", required=True, **define)
    flags.DEFINE_string(
        "workdir",
        None,
        "A train.py run: its luma, PN, T, frame size and init; its learned coefficients are marked.",
        **define,
    )
    flags.DEFINE_integer("step", None, "Checkpoint step of --workdir (default: the latest).", **define)
    flags.DEFINE_float(
        "m",
        None,
        f"The m the page starts at (default: the run's m_init_mean, else {DEFAULT_INIT['m_init_mean']}).",
        **define,
    )
    flags.DEFINE_float(
        "n",
        None,
        f"The n the page starts at (default: the run's n_init_mean, else {DEFAULT_INIT['n_init_mean']}).",
        **define,
    )
    flags.DEFINE_enum("luma", None, sorted(motion_prompt.LUMA_WEIGHTS), "Without --workdir (default: rgb).", **define)
    flags.DEFINE_integer(
        "num_frames",
        None,
        f"T, the number of time steps; T+1 frames are read (default: the run's, else {DEFAULT_NUM_STEPS}).",
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


def run_init(workdir: str) -> dict[str, float]:
    """The `model.vmp.*_init_*` values of a run's saved config."""
    vmp = run_dir.read_json(os.path.join(workdir, run_dir.CONFIG))["model"]["vmp"]
    return {k: float(vmp.get(k, v)) for k, v in DEFAULT_INIT.items()}


def _command(argv: list[str], flag_values: flags.FlagValues) -> None:
    if len(argv) != 2:
        raise cli.UsageError(f"expected one VIDEO, got {len(argv) - 1}: {argv[1:]}")
    video_path, out, workdir = argv[1], flag_values.out, flag_values.workdir
    if workdir is not None and flag_values.luma is not None:
        raise cli.UsageError("--luma is for a page without --workdir; a run uses its own (config.model.vmp.luma)")
    if workdir is None and flag_values.step is not None:
        raise cli.UsageError("--step is for --workdir")
    size = parse_size(flag_values.size)
    check_paths(video_path, out)  # before the slow part
    if workdir is not None:
        setting = setting_from_run(workdir, flag_values.step)
        init, learned = run_init(workdir), learned_values(setting.params, setting.pn, setting.label)
    else:
        setting = setting_from_m_n(0.0, 0.0, flag_values.luma or "rgb")
        init, learned = dict(DEFAULT_INIT), None
    for name in ("m", "n"):
        if flag_values[name].value is not None:
            if not math.isfinite(flag_values[name].value):
                raise cli.UsageError(f"--{name} must be finite, got {flag_values[name].value}")
            init[f"{name}_init_mean"] = flag_values[name].value
    explore(
        video_path,
        out,
        setting,
        init=init,
        learned=learned,
        num_steps=flag_values.num_frames,
        size=size,
        start=flag_values.start,
        stride=flag_values.stride,
    )
    cli.say(f"wrote {out} ({os.path.getsize(out) / 1e6:.2f} MB)")


def main(argv: Sequence[str]) -> int:
    """`python -m vmp_jax.explore ARGV...` in this process; returns the exit status (2: a user error)."""
    return cli.call(_command, _define_flags, argv, prog="python -m vmp_jax.explore")


if __name__ == "__main__":
    cli.run(_command, _define_flags)
