"""The Video Motion Prompt (VMP) layer: frame differences -> learnable attention -> motion prompts.

Chen, Wang, Koniusz, Gedeon, "Motion meets Attention: Video Motion Prompts", ACML 2024.

A clip of T+1 standardised RGB frames becomes T prompts. For each consecutive pair (t, t+1):

  D_t = G(X_{t+1}) - G(X_t)                       signed luma difference of the un-standardised frames
  A_t = sigmoid(a * (D_t - b))                    a = 5 / (0.45 |tanh m| + 0.1),  b = 0.6 tanh n
  P_t = A_t * X_{t+1}                             the later, still-standardised frame, all channels

and the temporal attention variation V = sum_t ||A_{t+1} - A_t||^2 / (B (T-1) H W) regularises training
(the objective adds lambda * V; lambda belongs to the caller). `m` and `n` are the learnable parameters.

The maths lives in pure functions; `VideoMotionPrompt` only owns the parameters and checks its input.
The per-pair computation is written once (`pair_prompt`) and mapped over pairs and batch with `jax.vmap`.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array

# Luma weights applied to (R, G, B). The reference implementation applies OpenCV's B,G,R weights to RGB
# frames, i.e. swaps the red and blue weights; 'reference' reproduces it exactly.
LUMA_WEIGHTS = {
    "rgb": (0.299, 0.587, 0.114),
    "reference": (0.114, 0.587, 0.299),
}
PARAMETRIZATIONS = ("scalar", "per_pixel")
DEFAULT_MEAN = 0.45
DEFAULT_STD = 0.225


class MotionPrompts(NamedTuple):
    """What the layer computes. prompts: (B, T, H, W, 3) input dtype; attention: (B, T, H, W) float32."""

    prompts: Array
    attention: Array
    variation: Array


def normal_init(mean: float = 1e-5, stddev: float = 1.0) -> Callable[..., Array]:
    """Initialiser drawing N(mean, stddev^2), as the reference initialises m and n."""

    def init(key: Array, shape: Sequence[int], dtype: Any = jnp.float32) -> Array:
        return mean + stddev * jax.random.normal(key, shape, dtype)

    return init


def slope_and_shift(m: Array, n: Array) -> tuple[Array, Array]:
    """The paper's power normalisation: slope a = 5 / (0.45 |tanh m| + 0.1), shift b = 0.6 tanh n."""
    m = jnp.asarray(m, jnp.float32)
    n = jnp.asarray(n, jnp.float32)
    return 5.0 / (0.45 * jnp.abs(jnp.tanh(m)) + 0.1), 0.6 * jnp.tanh(n)


def luma(frames: Array, weights: Sequence[float] = LUMA_WEIGHTS["rgb"], mean: Any = DEFAULT_MEAN,
         std: Any = DEFAULT_STD) -> Array:
    """Grey level of standardised frames after undoing the standardisation. frames: (..., 3) -> (...) float32."""
    x = frames.astype(jnp.float32) * jnp.asarray(std, jnp.float32) + jnp.asarray(mean, jnp.float32)
    w = jnp.asarray(weights, jnp.float32)
    return x[..., 0] * w[0] + x[..., 1] * w[1] + x[..., 2] * w[2]


def frame_differences(grey: Array) -> Array:
    """Signed differences of consecutive grey frames, D_t = G_{t+1} - G_t. grey: (B, T+1, H, W) -> (B, T, H, W)."""
    return grey[:, 1:] - grey[:, :-1]


def attention(d: Array, m: Array, n: Array) -> Array:
    """A = sigmoid(a (D - b)) with a, b from `slope_and_shift(m, n)`; m, n scalars or broadcastable maps."""
    slope, shift = slope_and_shift(m, n)
    return jax.nn.sigmoid(slope * (d.astype(jnp.float32) - shift))


def temporal_variation(att: Array) -> Array:
    """V = sum (A_{t+1} - A_t)^2 / (B (T-1) H W); 0 when T = 1. att: (B, T, H, W) -> () float32."""
    b, t, h, w = att.shape
    if t < 2:
        return jnp.zeros((), jnp.float32)
    diff = att[:, 1:].astype(jnp.float32) - att[:, :-1].astype(jnp.float32)
    return jnp.sum(diff * diff) / (b * (t - 1) * h * w)


def pair_prompt(prev: Array, nxt: Array, m: Array, n: Array, weights: Sequence[float] = LUMA_WEIGHTS["rgb"],
                mean: Any = DEFAULT_MEAN, std: Any = DEFAULT_STD) -> tuple[Array, Array]:
    """One frame pair -> (attention, prompt). prev, nxt: (H, W, 3) standardised -> (H, W) float32, (H, W, 3)."""
    d = luma(nxt, weights, mean, std) - luma(prev, weights, mean, std)
    att = attention(d, m, n)
    prompt = (att[..., None] * nxt.astype(jnp.float32)).astype(nxt.dtype)
    return att, prompt


def motion_prompts(frames: Array, m: Array, n: Array, luma_mode: str = "rgb", mean: Any = DEFAULT_MEAN,
                   std: Any = DEFAULT_STD) -> MotionPrompts:
    """The whole VMP pipeline. frames: (B, T+1, H, W, 3) float, standardised -> MotionPrompts."""
    validate_frames(frames)
    weights = luma_weights(luma_mode)
    per_pair = lambda prev, nxt: pair_prompt(prev, nxt, m, n, weights, mean, std)  # noqa: E731
    over_pairs = jax.vmap(jax.vmap(per_pair))  # inner: frame pairs t; outer: batch
    att, prompts = over_pairs(frames[:, :-1], frames[:, 1:])
    return MotionPrompts(prompts, att, temporal_variation(att))


def luma_weights(mode: str) -> tuple[float, float, float]:
    """The (R, G, B) weights of a luma mode, 'rgb' or 'reference'."""
    if mode not in LUMA_WEIGHTS:
        raise ValueError(f"luma must be one of {sorted(LUMA_WEIGHTS)}, got {mode!r}")
    return LUMA_WEIGHTS[mode]


def validate_frames(frames: Any) -> None:
    """Raise ValueError unless frames is a float array shaped (B, T+1, H, W, 3) with T+1 >= 2."""
    shape = getattr(frames, "shape", None)
    dtype = getattr(frames, "dtype", None)
    if shape is None or dtype is None:
        raise ValueError(f"frames must be an array of shape (B, T+1, H, W, 3), got {type(frames).__name__}")
    if len(shape) != 5:
        raise ValueError(f"frames must have rank 5 (B, T+1, H, W, 3), got shape {tuple(shape)}")
    if shape[1] < 2:
        raise ValueError(f"frames need at least 2 frames along axis 1 (T+1 >= 2), got shape {tuple(shape)}")
    if shape[-1] != 3:
        raise ValueError(f"frames must have 3 (RGB) channels last, got shape {tuple(shape)}")
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"frames must be standardised floats ((x/255 - 0.45)/0.225), got dtype {dtype}; "
                         "convert uint8 frames with vmp_jax.data.transforms.standardize first")


class VideoMotionPrompt(nn.Module):
    """Flax layer: standardised clips (B, T+1, H, W, 3) -> (prompts (B, T, H, W, 3), variation ()).

    `layer.apply(variables, frames, return_attention=True)` also returns the attention maps (B, T, H, W),
    computed by the same code. Parameters: `params['m']`, `params['n']`, scalars or (H, W) maps.
    """

    luma: str = "rgb"
    parametrization: str = "scalar"
    m_init: Callable[..., Array] = normal_init()
    n_init: Callable[..., Array] = normal_init()
    mean: Any = DEFAULT_MEAN
    std: Any = DEFAULT_STD

    @nn.compact
    def __call__(self, frames: Array, return_attention: bool = False):
        validate_frames(frames)
        luma_weights(self.luma)
        if self.parametrization not in PARAMETRIZATIONS:
            raise ValueError(f"parametrization must be one of {PARAMETRIZATIONS}, got {self.parametrization!r}")
        height, width = frames.shape[2], frames.shape[3]
        shape = () if self.parametrization == "scalar" else (height, width)
        if self.has_variable("params", "m") and self.get_variable("params", "m").shape != shape:
            raise ValueError(f"m has shape {self.get_variable('params', 'm').shape} but frames of shape "
                             f"{tuple(frames.shape)} need {shape}: a per-pixel layer only applies to the frame "
                             "size it was initialised with")
        m = self.param("m", self.m_init, shape, jnp.float32)
        n = self.param("n", self.n_init, shape, jnp.float32)
        out = motion_prompts(frames, m, n, self.luma, self.mean, self.std)
        if return_attention:
            return out.prompts, out.variation, out.attention
        return out.prompts, out.variation
