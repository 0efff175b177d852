"""Procedural motion clips: the embedded default data, whose class is defined only by motion.

Every clip shows 1..max_objects textured objects drifting over a static textured, cluttered background, with
per-frame flicker and pixel noise, and optional camera shake (`jitter`). The class is the *direction* in which
all objects of the clip move: class c moves at angle 2*pi*c/num_classes (0 = rightwards, counter-clockwise with
y pointing up on screen). Everything else (shapes, colours, textures, background, speed, starting positions,
flicker, shake) is drawn from the same distribution for every class. Objects wrap around the frame edges (a
torus), so their position in any single frame is uniform whatever the direction: one frame carries no class
information, two frames do.

Speeds are 1-2 pixels per frame by default, so a 3x3x3 convolution sees an object's displacement between
neighbouring frames; with 2-3.5 px/frame, or with camera shake on, a small Conv3D on a 2-core CPU stayed at
chance for 220 steps (benchmarks/RESULTS_data.md). Items are deterministic in (seed, index): use different
seeds for the train and eval splits.
"""

from __future__ import annotations

import numpy as np

_SHAPES = ("square", "disc", "ring", "cross", "triangle")


def _shape_mask(kind: str, size: int) -> np.ndarray:
    """Boolean (size, size) mask of one object shape."""
    c = (size - 1) / 2.0
    y, x = np.mgrid[:size, :size]
    r = np.hypot(y - c, x - c)
    if kind == "square":
        return np.ones((size, size), bool)
    if kind == "disc":
        return r <= size / 2.0
    if kind == "ring":
        return (r <= size / 2.0) & (r >= size / 4.0)
    if kind == "cross":
        w = max(1, size // 6)
        return (np.abs(y - c) <= w) | (np.abs(x - c) <= w)
    if kind == "triangle":
        return np.abs(x - c) <= (y + 1) / 2.0
    raise ValueError(f"unknown shape {kind!r}; expected one of {_SHAPES}")


class ProceduralMotionSource:
    """Random-access source of motion-defined clips.

    item: {'frames': uint8 (num_frames, height, width, 3), 'label': int32 ()}; num_frames includes the VMP frame.
    Labels are balanced: index i has label i % num_classes.
    """

    def __init__(
        self,
        num_examples: int,
        num_frames: int,
        height: int,
        width: int,
        num_classes: int = 4,
        seed: int = 0,
        *,
        speed: tuple[float, float] = (1.0, 2.0),
        max_objects: int = 5,
        flicker: float = 0.08,
        noise_std: float = 4.0,
        jitter: int = 0,
        clutter: int = 6,
    ):
        for name, value, low in (
            ("num_examples", num_examples, 1),
            ("num_frames", num_frames, 2),
            ("height", height, 16),
            ("width", width, 16),
            ("num_classes", num_classes, 2),
            ("max_objects", max_objects, 1),
        ):
            if int(value) != value or value < low:
                raise ValueError(f"ProceduralMotionSource: {name}={value!r}; expected an integer >= {low}")
        if not 0 < speed[0] <= speed[1]:
            raise ValueError(f"ProceduralMotionSource: speed={speed!r}; expected 0 < low <= high (pixels per frame)")
        self.num_examples, self.num_frames = int(num_examples), int(num_frames)
        self.height, self.width, self.num_classes = int(height), int(width), int(num_classes)
        self.seed = int(seed)
        self.speed, self.max_objects = (float(speed[0]), float(speed[1])), int(max_objects)
        self.flicker, self.noise_std, self.jitter, self.clutter = (
            float(flicker),
            float(noise_std),
            int(jitter),
            int(clutter),
        )
        self.class_names = [f"direction_{round(360 * c / num_classes)}deg" for c in range(num_classes)]

    def __len__(self) -> int:
        return self.num_examples

    def __repr__(self) -> str:
        return (
            f"ProceduralMotionSource(num_examples={self.num_examples}, num_frames={self.num_frames}, "
            f"height={self.height}, width={self.width}, num_classes={self.num_classes}, seed={self.seed})"
        )

    def _background(self, rng: np.random.Generator) -> np.ndarray:
        """Static (H, W, 3) float32 background: coarse colour texture, fine noise texture and clutter blocks."""
        h, w = self.height, self.width
        cells = int(rng.integers(2, 6))
        coarse = rng.uniform(30, 200, size=(cells, cells, 3)).astype(np.float32)
        ys = np.arange(h) * cells // h
        xs = np.arange(w) * cells // w
        bg = coarse[ys][:, xs] + rng.normal(0, 12, size=(h, w, 1)).astype(np.float32)
        for _ in range(int(rng.integers(0, self.clutter + 1))):
            ch, cw = rng.integers(2, max(3, h // 6), size=2)
            y0, x0 = int(rng.integers(0, h - ch)), int(rng.integers(0, w - cw))
            bg[y0 : y0 + ch, x0 : x0 + cw] = rng.uniform(0, 255, size=3)
        return bg

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        index = int(index)
        if not 0 <= index < self.num_examples:
            raise IndexError(f"ProceduralMotionSource index {index} out of range [0, {self.num_examples})")
        label = index % self.num_classes
        rng = np.random.default_rng([self.seed, index])
        t, h, w = self.num_frames, self.height, self.width
        frames = np.broadcast_to(self._background(rng), (t, h, w, 3)).copy()

        angle = 2 * np.pi * label / self.num_classes
        speed = rng.uniform(*self.speed)
        velocity = speed * np.array([-np.sin(angle), np.cos(angle)])  # (dy, dx); screen y points down
        steps = np.arange(t)[:, None]
        for _ in range(int(rng.integers(1, self.max_objects + 1))):
            size = int(rng.integers(max(3, h // 8), max(4, h // 4) + 1))
            mask = _shape_mask(_SHAPES[int(rng.integers(len(_SHAPES)))], size)
            texture = (rng.uniform(0, 255, size=3) + rng.normal(0, 20, size=(size, size, 3))).astype(np.float32)
            start = rng.uniform(0, [h, w])
            # Per-object speed wobble keeps objects apart without tying any appearance to the class.
            path = np.round(start + steps * velocity * rng.uniform(0.85, 1.15)).astype(np.int64)
            offsets = np.arange(size)
            for f in range(t):
                rows = (path[f, 0] + offsets) % h
                cols = (path[f, 1] + offsets) % w
                patch = frames[f][np.ix_(rows, cols)]
                frames[f][np.ix_(rows, cols)] = np.where(mask[..., None], texture, patch)

        frames *= 1.0 + rng.uniform(-self.flicker, self.flicker, size=(t, 1, 1, 1)).astype(np.float32)
        frames += rng.normal(0, self.noise_std, size=frames.shape).astype(np.float32)
        if self.jitter:
            # Camera shake as a sparse random walk (a 1-pixel step on 20% of frames per axis, within +-jitter): a
            # per-frame random shift would move the textured background more than the objects and drown the motion.
            steps_ = rng.choice([-1, 0, 1], p=[0.1, 0.8, 0.1], size=(t, 2))
            steps_[0] = 0
            shifts = np.zeros((t, 2), np.int64)
            for f in range(1, t):
                shifts[f] = np.clip(shifts[f - 1] + steps_[f], -self.jitter, self.jitter)
            for f in range(t):
                frames[f] = np.roll(frames[f], tuple(int(s) for s in shifts[f]), axis=(0, 1))
        return {"frames": np.clip(frames, 0, 255).astype(np.uint8), "label": np.int32(label)}
