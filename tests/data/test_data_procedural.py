"""The procedural source: deterministic, cheap, and its class is visible in motion but not in any single frame."""

import numpy as np
import pytest

from vmp_jax.data.procedural import ProceduralMotionSource


def _displacement(frames: np.ndarray) -> np.ndarray:
    """Mean object velocity (dy, dx) relative to the background, by phase correlation of consecutive frames.

    Per frame pair, the peak within 2 px of zero is the (jittering) static background; the strongest peak away
    from it is the moving objects.
    """
    g = frames.astype(np.float32).mean(-1)
    g -= g.mean(axis=(1, 2), keepdims=True)
    f = np.fft.fft2(g)
    cross = f[1:] * np.conj(f[:-1])
    r = np.real(np.fft.ifft2(cross / (np.abs(cross) + 1e-6)))
    t, h, w = r.shape
    near = np.arange(-2, 3)
    total = np.zeros(2)
    for k in range(t):
        window = r[k][np.ix_(near % h, near % w)]
        by, bx = np.unravel_index(np.argmax(window), window.shape)
        bg = np.array([near[by], near[bx]])
        rk = r[k].copy()
        rk[np.ix_((bg[0] + np.arange(-1, 2)) % h, (bg[1] + np.arange(-1, 2)) % w)] = -np.inf
        dy, dx = np.unravel_index(np.argmax(rk), rk.shape)
        obj = np.array([dy - h if dy > h // 2 else dy, dx - w if dx > w // 2 else dx])
        total += obj - bg
    return total / t


def _nearest_mean_accuracy(features: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    """Train a nearest-class-mean classifier on the first half, report accuracy on the second half."""
    n = len(labels) // 2
    means = np.stack([features[:n][labels[:n] == c].mean(0) for c in range(num_classes)])
    pred = np.argmin(((features[n:, None] - means[None]) ** 2).sum(-1), axis=1)
    return float((pred == labels[n:]).mean())


def test_item_contract_and_determinism():
    src = ProceduralMotionSource(10, 9, 32, 48, num_classes=4, seed=7)
    item = src[5]
    assert item["frames"].shape == (9, 32, 48, 3) and item["frames"].dtype == np.uint8
    assert item["label"].dtype == np.int32 and int(item["label"]) == 5 % 4
    np.testing.assert_array_equal(item["frames"], ProceduralMotionSource(10, 9, 32, 48, 4, seed=7)[5]["frames"])
    assert not np.array_equal(item["frames"], ProceduralMotionSource(10, 9, 32, 48, 4, seed=8)[5]["frames"])
    assert len(src) == 10 and len(src.class_names) == 4
    with pytest.raises(IndexError):
        src[10]
    with pytest.raises(ValueError, match="num_frames"):
        ProceduralMotionSource(10, 1, 32, 32)


@pytest.fixture(scope="module")
def clips():
    src = ProceduralMotionSource(400, 8, 48, 48, num_classes=4, seed=11, jitter=1)
    items = [src[i] for i in range(len(src))]
    labels = np.array([int(x["label"]) for x in items])
    perm = np.random.default_rng(0).permutation(len(items))  # labels are i % 4; mix them across the two halves
    return np.stack([x["frames"] for x in items])[perm], labels[perm]


def test_single_frame_carries_no_class_information(clips):
    frames, labels = clips
    for t in (0, frames.shape[1] - 1):
        # 4x4 block means of one frame: a coarse image summary, still high-dimensional enough to pick up any
        # class-dependent layout, colour or brightness.
        feats = (
            frames[:, t].astype(np.float32).reshape(len(frames), 8, 6, 8, 6, 3).mean((2, 4)).reshape(len(frames), -1)
        )
        acc = _nearest_mean_accuracy(feats, labels, 4)
        assert acc < 0.25 + 0.11, f"frame {t}: a single-frame classifier reached {acc:.2f} (chance 0.25)"
        # Per-class mean intensities agree within sampling noise.
        class_means = np.array([frames[labels == c, t].mean() for c in range(4)])
        assert np.ptp(class_means) < 6.0


def test_motion_defines_the_class():
    # Faster than the default speeds so the object peak clears the +-1 px background window of _displacement.
    src = ProceduralMotionSource(120, 9, 64, 64, num_classes=8, seed=3, speed=(2.0, 3.0), jitter=1)
    correct = 0
    for i in range(len(src)):
        item = src[i]
        dy, dx = _displacement(item["frames"])
        pred = int(np.round(np.arctan2(-dy, dx) / (2 * np.pi / 8))) % 8
        correct += pred == int(item["label"])
    assert correct / len(src) > 0.8  # chance: 0.125


def test_frame_difference_classifier_beats_chance():
    """The same trivial classifier that fails on one frame succeeds on a motion feature (with camera jitter on)."""
    src = ProceduralMotionSource(240, 8, 48, 48, num_classes=4, seed=11, speed=(2.0, 3.0), jitter=1)
    items = [src[i] for i in np.random.default_rng(0).permutation(len(src))]
    labels = np.array([int(x["label"]) for x in items])
    feats = np.array([_displacement(x["frames"]) for x in items], np.float32)
    assert _nearest_mean_accuracy(feats, labels, 4) > 0.7
