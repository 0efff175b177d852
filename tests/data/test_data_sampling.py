"""Clip index sampling: strides, random starts, evenly spaced test clips, loop/pad, fps resampling."""

import numpy as np
import pytest

from vmp_jax.data import sampling


def test_train_indices_stride_and_range():
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(200):
        idx = sampling.train_clip_indices(30, 5, 3, rng)
        np.testing.assert_array_equal(np.diff(idx), 3)
        assert 0 <= idx[0] and idx[-1] < 30
        starts.add(int(idx[0]))
    assert starts == set(range(0, 30 - 13 + 1))  # span 13: every start 0..17 occurs


def test_eval_indices_evenly_spaced():
    # span = 4 * 2 + 1 = 9, slack = 21 -> starts round(k * 21 / 3) = 0, 7, 14, 21
    starts = [int(sampling.eval_clip_indices(30, 5, 2, k, 4)[0]) for k in range(4)]
    assert starts == [0, 7, 14, 21]
    np.testing.assert_array_equal(sampling.eval_clip_indices(30, 5, 2, 3, 4), [21, 23, 25, 27, 29])
    assert int(sampling.eval_clip_indices(30, 5, 2, 0, 1)[0]) == 10  # one clip: centred


def test_short_video_loop_and_pad():
    rng = np.random.default_rng(0)
    assert sampling.is_short(4, 5, 2) and not sampling.is_short(9, 5, 2)
    np.testing.assert_array_equal(sampling.eval_clip_indices(4, 5, 2, 0, 1, "loop"), [0, 2, 0, 2, 0])
    np.testing.assert_array_equal(sampling.eval_clip_indices(4, 5, 2, 0, 1, "pad"), [0, 2, 3, 3, 3])
    np.testing.assert_array_equal(sampling.eval_clip_indices(4, 5, 1, 1, 2, "loop"), [2, 3, 0, 1, 2])
    idx = sampling.train_clip_indices(4, 6, 1, rng, "loop")
    np.testing.assert_array_equal(idx, (idx[0] + np.arange(6)) % 4)
    np.testing.assert_array_equal(sampling.train_clip_indices(4, 6, 1, rng, "pad"), [0, 1, 2, 3, 3, 3])
    with pytest.raises(ValueError, match="short_video"):
        sampling.train_clip_indices(4, 6, 1, rng, "wrap")


def test_fps_resampling():
    assert sampling.frames_at_fps(100, 25.0, 0) == 100
    assert sampling.frames_at_fps(100, 25.0, 10.0) == 40
    np.testing.assert_array_equal(sampling.to_source_indices(np.arange(5), 25.0, 10.0), [0, 2, 5, 7, 10])
    np.testing.assert_array_equal(sampling.to_source_indices(np.arange(4), 30.0, 30.0), np.arange(4))


def test_window_frames():
    # 50 frames at 25 fps: [0.4, 0.8) s holds frames 10..19; 0.1 s rounds to 2 frames skipped at the start.
    assert sampling.window_frames(50, 25.0) == 50
    assert sampling.window_frames(50, 25.0, 0.4, 0.8) == 10
    assert sampling.window_frames(50, 25.0, 0.1) == 48
    assert sampling.window_frames(50, 25.0, 1.6, 3.0) == 10  # the end is past the video's last frame
    assert sampling.window_frames(50, 25.0, 2.5) < 1
    # 29.97 fps: floor(1.001 * 29.97 + 1e-6) = 29 frames, not 30.
    assert sampling.window_frames(1000, 29.97, 0.0, 1.001) == 29
