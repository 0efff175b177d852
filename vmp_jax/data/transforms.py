"""Spatial transforms on uint8 clips, and the one standardisation step that turns them into float.

Frames stay uint8 (T, H, W, 3) through decoding, augmentation, batching and host-to-device transfer (4x less
traffic than float32); the trainer calls `standardize` on device, inside its jitted step, as the last step.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

MEAN = 0.45
STD = 0.225


def standardize(frames):
    """(x / 255 - 0.45) / 0.225.  frames: (..., 3) uint8 (numpy or jax) -> same shape float32."""
    return (frames.astype(np.float32) / 255.0 - MEAN) / STD


def _check_clip(frames: np.ndarray) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected a uint8 clip (T, H, W, 3), got {frames.dtype} {frames.shape}")


def short_side_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """Output (height, width) when the shorter side becomes `short_side`, keeping the aspect ratio."""
    if height <= width:
        return short_side, max(short_side, int(round(width * short_side / height)))
    return max(short_side, int(round(height * short_side / width))), short_side


def resize(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of every frame.  frames: (T, H, W, 3) uint8 -> (T, height, width, 3) uint8."""
    _check_clip(frames)
    if frames.shape[1:3] == (height, width):
        return frames
    out = np.empty((frames.shape[0], height, width, 3), np.uint8)
    for t, frame in enumerate(frames):
        out[t] = np.asarray(Image.fromarray(frame).resize((width, height), Image.BILINEAR))
    return out


def resize_short_side(frames: np.ndarray, short_side: int) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, H', W', 3) uint8 with min(H', W') == short_side."""
    _check_clip(frames)
    return resize(frames, *short_side_size(frames.shape[1], frames.shape[2], short_side))


def cover_and_centre_crop(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize to cover height x width keeping the aspect ratio, then centre-crop (for square sizes: the short side
    becomes `height`, as in the eval view). (T, h, w, 3) uint8 -> (T, height, width, 3) uint8."""
    _check_clip(frames)
    h, w = frames.shape[1:3]
    scale = max(height / h, width / w)
    rh, rw = max(height, round(h * scale)), max(width, round(w * scale))
    return _resampled_region(frames, (rh, rw), (rh - height) // 2, (rw - width) // 2, height, width)


def _resampled_region(frames: np.ndarray, resized: tuple[int, int], top: int, left: int, height: int, width: int):
    """frames resized to `resized` (H', W'), rows top.., columns left.. of it: only that region is resampled (PIL's
    box resize: the full resize's sampling grid and filter; equal to it up to rounding)."""
    h, w = frames.shape[1:3]
    oh, ow = resized
    if not (0 <= top <= oh - height and 0 <= left <= ow - width):
        raise ValueError(f"crop of {height}x{width} at ({top}, {left}) does not fit frames of {(oh, ow)}")
    if (oh, ow) == (h, w):
        return np.ascontiguousarray(frames[:, top : top + height, left : left + width])
    sy, sx = h / oh, w / ow
    box = (left * sx, top * sy, (left + width) * sx, (top + height) * sy)
    out = np.empty((frames.shape[0], height, width, 3), np.uint8)
    for t, frame in enumerate(frames):
        out[t] = np.asarray(Image.fromarray(frame).resize((width, height), Image.BILINEAR, box=box))
    return out


def crop(frames: np.ndarray, top: int, left: int, size: int) -> np.ndarray:
    """(T, H, W, 3) -> (T, size, size, 3), rows top..top+size, columns left..left+size."""
    if not (0 <= top <= frames.shape[1] - size and 0 <= left <= frames.shape[2] - size):
        raise ValueError(f"crop of {size}x{size} at ({top}, {left}) does not fit frames of {frames.shape[1:3]}")
    return frames[:, top : top + size, left : left + size]


def resized_crop(frames: np.ndarray, short_side: int, top: int, left: int, size: int) -> np.ndarray:
    """`crop(resize_short_side(frames, short_side), top, left, size)`, resampling only the source region the crop
    covers (PIL's box resize: the same sampling grid and filter; ~2.5x faster for a 160^2 crop of a 602x256 frame,
    equal to the full resize up to rounding: at most 2 levels, on a few % of pixels).

    frames: (T, H, W, 3) uint8 -> (T, size, size, 3) uint8.
    """
    _check_clip(frames)
    resized = short_side_size(frames.shape[1], frames.shape[2], short_side)
    return _resampled_region(frames, resized, top, left, size, size)


def random_resized_crop_flip(
    frames: np.ndarray, rng: np.random.Generator, *, scale_range: tuple[int, int], crop_size: int, flip: bool = True
) -> np.ndarray:
    """Train augmentation: short side to U{scale_range}, random crop_size crop, horizontal flip w.p. 1/2.

    frames: (T, H, W, 3) uint8 -> (T, crop_size, crop_size, 3) uint8; the same crop and flip for every frame.
    Only the cropped region is resampled (`resized_crop`).
    """
    low, high = scale_range
    if not crop_size <= low <= high:
        raise ValueError(f"scale_range={scale_range} and crop_size={crop_size}: expected crop_size <= low <= high")
    _check_clip(frames)
    short_side = int(rng.integers(low, high + 1))
    oh, ow = short_side_size(frames.shape[1], frames.shape[2], short_side)
    top = int(rng.integers(0, oh - crop_size + 1))
    left = int(rng.integers(0, ow - crop_size + 1))
    frames = _resampled_region(frames, (oh, ow), top, left, crop_size, crop_size)
    if flip and rng.random() < 0.5:
        frames = frames[:, :, ::-1]
    return np.ascontiguousarray(frames)


def three_crop_offset(height: int, width: int, crop_size: int, index: int, num_crops: int = 3) -> tuple[int, int]:
    """(top, left) of test crop `index`: evenly spaced along the long side (0 = top/left end, last = other end).

    With num_crops=1 this is the centre crop; with 3: start, centre, end (the SlowFast/X3D 3-crop test).
    """
    if not 0 <= index < num_crops:
        raise ValueError(f"crop index {index} out of range [0, {num_crops})")
    if height < crop_size or width < crop_size:
        raise ValueError(f"crop_size {crop_size} larger than frames {height}x{width}")
    centre_top, centre_left = (height - crop_size) // 2, (width - crop_size) // 2
    if num_crops == 1:
        return centre_top, centre_left
    frac = index / (num_crops - 1)
    if height > width:
        return int(round(frac * (height - crop_size))), centre_left
    return centre_top, int(round(frac * (width - crop_size)))


def eval_view(
    frames: np.ndarray, *, short_side: int, crop_size: int, crop_index: int, num_crops: int = 3
) -> np.ndarray:
    """Test transform: resize the short side, then spatial crop `crop_index` of `num_crops` (only the cropped
    region is resampled, `resized_crop`).

    frames: (T, H, W, 3) uint8 -> (T, crop_size, crop_size, 3) uint8.
    """
    _check_clip(frames)
    oh, ow = short_side_size(frames.shape[1], frames.shape[2], short_side)
    top, left = three_crop_offset(oh, ow, crop_size, crop_index, num_crops)
    return _resampled_region(frames, (oh, ow), top, left, crop_size, crop_size)
