"""The Video Motion Prompt (VMP) layer: frame differences -> learnable attention -> motion prompts.

Chen, Wang, Koniusz, Gedeon, "Motion meets Attention: Video Motion Prompts", ACML 2024.

A clip of T+1 standardised RGB frames becomes T prompts. For each consecutive pair (t, t+1):

  D_t = G(X_{t+1}) - G(X_t)                       signed luma difference of the un-standardised frames
  A_t = sigmoid(a * (D_t - b))                    a = 5 / (0.45 |tanh m| + 0.1),  b = 0.6 tanh n
  P_t = A_t * X_{t+1}                             the later, still-standardised frame, all channels

and the temporal attention variation V = sum_t ||A_{t+1} - A_t||^2 / (B (T-1) H W) regularises training
(the objective adds lambda * V; lambda belongs to the caller). `m` and `n` are the learnable parameters.

The paper's modified sigmoid (`pn='sigmoid'`) is one "power normalisation" (PN) of D; for its ablation the
layer also offers the PNs of Koniusz & Zhang, "Power normalizations in fine-grained image, few-shot image and
graph classification" (TPAMI 2021), each with its own learnable parameter. Those are defined on non-negative
co-occurrence values p in [0, 1], so they are applied to p = |D| (clipped to [0, 1]) and give attention in [0, 1]:

  'gamma'    A = (p + 1e-6)^gamma                        gamma = exp(log_gamma)   (Gamma)
  'maxexp'   A = 1 - (1 - p)^eta                         eta = exp(log_eta)       (MaxExp)
  'sigme'    A = 2 / (1 + exp(-eta p)) - 1               eta = exp(log_eta)       (SigmE, a sigmoid MaxExp)
  'asinhe'   A = asinh(gamma p) / asinh(gamma)           gamma = exp(log_gamma)   (AsinhE, a smooth Gamma;
                                                                                   divided so that 1 -> 1)
The parameters are learned in log space so they stay positive; `pn_coefficients` gives their values.

The maths lives in pure functions; `VideoMotionPrompt` only owns the parameters and checks its input.
The per-pair computation is written once (`pair_prompt`) and mapped over pairs and batch with `jax.vmap`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

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
# Each power normalisation: its learnable parameters, and the default initial value of the positive
# coefficient (exp of the log-parameter) for the Koniusz & Zhang PNs.
PN_PARAMS = {
    "sigmoid": ("m", "n"),
    "gamma": ("log_gamma",),
    "maxexp": ("log_eta",),
    "sigme": ("log_eta",),
    "asinhe": ("log_gamma",),
}
POWER_NORMALISATIONS = tuple(PN_PARAMS)
# What `pn_coefficients` returns, with the symbols the paper / Koniusz & Zhang use for them.
PN_COEFFICIENT_SYMBOLS = {"slope_a": "a", "shift_b": "b", "gamma": "γ", "eta": "η"}
PN_DEFAULT_COEFFICIENT = {"gamma": 0.5, "maxexp": 20.0, "sigme": 20.0, "asinhe": 20.0}
_GAMMA_EPS = 1e-6
_MAXEXP_EPS = 1e-6
DEFAULT_MEAN = 0.45
DEFAULT_STD = 0.225


class MotionPrompts(NamedTuple):
    """What the layer computes. prompts: (B, T, H, W, 3) in the requested dtype (default: the input's);
    attention: (B, T, H, W) float32."""

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


def luma(
    frames: Array, weights: Sequence[float] = LUMA_WEIGHTS["rgb"], mean: Any = DEFAULT_MEAN, std: Any = DEFAULT_STD
) -> Array:
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


def pn_attention(d: Array, params: Mapping[str, Array], pn: str = "sigmoid") -> Array:
    """Attention from signed differences D with power normalisation `pn` (see the module docstring).

    d: (...) float; params: the PN's parameters (`PN_PARAMS[pn]`), scalars or maps broadcastable to d -> (...) f32.
    """
    check_pn(pn)
    d = d.astype(jnp.float32)
    if pn == "sigmoid":
        return attention(d, params["m"], params["n"])
    p = jnp.clip(jnp.abs(d), 0.0, 1.0)
    coefficient = jnp.exp(jnp.asarray(params[PN_PARAMS[pn][0]], jnp.float32))
    if pn == "gamma":
        return jnp.exp(coefficient * jnp.log(p + _GAMMA_EPS))
    if pn == "maxexp":
        return -jnp.expm1(coefficient * jnp.log1p(-jnp.minimum(p, 1.0 - _MAXEXP_EPS)))
    if pn == "sigme":
        return jnp.tanh(0.5 * coefficient * p)  # = 2 / (1 + exp(-eta p)) - 1
    return jnp.arcsinh(coefficient * p) / jnp.arcsinh(coefficient)


def pn_coefficients(params: Mapping[str, Array], pn: str = "sigmoid") -> dict[str, Array]:
    """The interpretable values of a PN's parameters: {'slope_a', 'shift_b'} for 'sigmoid', else {'gamma'|'eta'}."""
    check_pn(pn)
    if pn == "sigmoid":
        slope, shift = slope_and_shift(params["m"], params["n"])
        return {"slope_a": slope, "shift_b": shift}
    name = PN_PARAMS[pn][0]
    return {name.removeprefix("log_"): jnp.exp(jnp.asarray(params[name], jnp.float32))}


def check_pn(pn: str) -> None:
    if pn not in PN_PARAMS:
        raise ValueError(f"pn must be one of {POWER_NORMALISATIONS}, got {pn!r}")


def temporal_variation(att: Array) -> Array:
    """V = sum (A_{t+1} - A_t)^2 / (B (T-1) H W); 0 when T = 1. att: (B, T, H, W) -> () float32."""
    b, t, h, w = att.shape
    if t < 2:
        return jnp.zeros((), jnp.float32)
    diff = att[:, 1:].astype(jnp.float32) - att[:, :-1].astype(jnp.float32)
    return jnp.sum(diff * diff) / (b * (t - 1) * h * w)


def pair_prompt(
    prev: Array,
    nxt: Array,
    params: Mapping[str, Array],
    pn: str = "sigmoid",
    weights: Sequence[float] = LUMA_WEIGHTS["rgb"],
    mean: Any = DEFAULT_MEAN,
    std: Any = DEFAULT_STD,
    dtype: Any = None,
) -> tuple[Array, Array]:
    """One frame pair -> (attention, prompt). prev, nxt: (H, W, 3) standardised -> (H, W) float32, (H, W, 3) in
    `dtype` (None: nxt's). Luma and attention are float32; the product is formed in `dtype`, so a bfloat16 prompt
    never exists as float32 (the prompts are the largest tensor of the layer)."""
    d = luma(nxt, weights, mean, std) - luma(prev, weights, mean, std)
    att = pn_attention(d, params, pn)
    dtype = jnp.dtype(dtype or nxt.dtype)
    wide = jnp.promote_types(dtype, jnp.float32) == dtype  # float32 (or wider): the product in float32, as before
    if wide:
        return att, (att[..., None] * nxt.astype(jnp.float32)).astype(dtype)
    return att, att.astype(dtype)[..., None] * nxt.astype(dtype)


def motion_prompts(
    frames: Array,
    params: Mapping[str, Array],
    luma_mode: str = "rgb",
    mean: Any = DEFAULT_MEAN,
    std: Any = DEFAULT_STD,
    pn: str = "sigmoid",
    dtype: Any = None,
) -> MotionPrompts:
    """The whole VMP pipeline. frames: (B, T+1, H, W, 3) float, standardised; params: {'m', 'n'} for the paper's
    sigmoid (or `PN_PARAMS[pn]`), scalars or (H, W) maps; dtype: the prompts' (None: the frames') -> MotionPrompts."""
    validate_frames(frames)
    weights = luma_weights(luma_mode)
    check_pn(pn)
    missing = [k for k in PN_PARAMS[pn] if k not in params]
    if missing:
        raise ValueError(f"pn={pn!r} needs parameters {PN_PARAMS[pn]}, missing {missing} (got {sorted(params)})")
    per_pair = lambda prev, nxt: pair_prompt(prev, nxt, params, pn, weights, mean, std, dtype)  # noqa: E731
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
        raise ValueError(
            f"frames must be standardised floats ((x/255 - 0.45)/0.225), got dtype {dtype}; "
            "convert uint8 frames with vmp_jax.data.transforms.standardize first"
        )


class VideoMotionPrompt(nn.Module):
    """Flax layer: standardised clips (B, T+1, H, W, 3) -> (prompts (B, T, H, W, 3), variation ()).

    `layer.apply(variables, frames, return_attention=True)` also returns the attention maps (B, T, H, W),
    computed by the same code. Parameters: `params['m']`, `params['n']` (scalars or (H, W) maps) for the paper's
    `pn='sigmoid'`; `params['log_gamma']` or `params['log_eta']` for the other power normalisations, initialised
    by `pn_init` (default: the log of `PN_DEFAULT_COEFFICIENT[pn]`). `dtype`: the prompts' dtype (None: the
    frames'); the classifier passes its compute dtype, so that with bfloat16 the prompts are emitted in bfloat16.
    """

    luma: str = "rgb"
    parametrization: str = "scalar"
    m_init: Callable[..., Array] = normal_init()
    n_init: Callable[..., Array] = normal_init()
    mean: Any = DEFAULT_MEAN
    std: Any = DEFAULT_STD
    pn: str = "sigmoid"
    pn_init: Callable[..., Array] | None = None
    dtype: Any = None

    @nn.compact
    def __call__(self, frames: Array, return_attention: bool = False):
        validate_frames(frames)
        luma_weights(self.luma)
        check_pn(self.pn)
        if self.parametrization not in PARAMETRIZATIONS:
            raise ValueError(f"parametrization must be one of {PARAMETRIZATIONS}, got {self.parametrization!r}")
        height, width = frames.shape[2], frames.shape[3]
        shape = () if self.parametrization == "scalar" else (height, width)
        names = PN_PARAMS[self.pn]
        if self.has_variable("params", names[0]) and self.get_variable("params", names[0]).shape != shape:
            raise ValueError(
                f"{names[0]} has shape {self.get_variable('params', names[0]).shape} but frames of "
                f"shape {tuple(frames.shape)} need {shape}: a per-pixel layer only applies to the "
                "frame size it was initialised with"
            )
        if self.pn == "sigmoid":
            inits = (self.m_init, self.n_init)
        else:
            inits = (self.pn_init or normal_init(math.log(PN_DEFAULT_COEFFICIENT[self.pn]), 0.0),)
        params = {name: self.param(name, init, shape, jnp.float32) for name, init in zip(names, inits)}
        out = motion_prompts(frames, params, self.luma, self.mean, self.std, self.pn, self.dtype)
        if return_attention:
            return out.prompts, out.variation, out.attention
        return out.prompts, out.variation
