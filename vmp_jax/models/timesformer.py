"""TimeSformer (Bertasius, Wang, Torresani, "Is Space-Time Attention All You Need for Video Understanding?", ICML
2021), matching facebookresearch/TimeSformer `timesformer/models/vit.py` number for number.

A clip is cut into p x p patches per frame (a stride-p conv, 3 -> width), a cls token is put in front, `pos_embed`
(1, 1+N, D) is added per frame and `time_embed` (1, T, D) per patch position; both are resized (nearest, as
PyTorch's `F.interpolate`) when the clip has another N or T than the parameters. The blocks are pre-norm
transformer blocks with fused-qkv attention (exact GELU in the MLP, LayerNorm eps 1e-6); with
`attention_type='divided_space_time'` (the paper's) each block attends over time per patch position (temporal
norm, attention, `temporal_fc`), then over space per frame with the cls token repeated into every frame (its T
outputs averaged), then applies the MLP. 'joint_space_time' attends over all T*N patches at once; 'space_only'
runs the blocks per frame and averages the frames' cls tokens. The head reads the normalised cls token.

Tokens are held as a cls token (B, 1, D) beside the patch tokens (B, T, N, D) (N row-major over the patch grid):
attention does not see token order, so this is the reference's `(n t)` sequence without its reshuffles.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vmp_jax.models.registry import register_backbone

ATTENTION_TYPES = ("divided_space_time", "space_only", "joint_space_time")
ATTENTION_IMPLS = ("xla", "cudnn")
# '' = no rematerialisation; otherwise a `jax.checkpoint_policies` name applied to every block.
REMAT_POLICIES = ("", "nothing_saveable", "dots_saveable", "dots_with_no_batch_dims_saveable", "everything_saveable")
LAYERNORM_EPS = 1e-6
INIT_STD = 0.02  # the reference's trunc_normal_(std=.02) for linears, cls_token and pos_embed

_dense_init = nn.initializers.truncated_normal(INIT_STD)


def nearest_indices(size_in: int, size_out: int) -> np.ndarray:
    """Source indices of PyTorch's `F.interpolate(mode='nearest')`: floor(i * in / out)."""
    return np.minimum(np.floor(np.arange(size_out) * (size_in / size_out)).astype(np.int64), size_in - 1)


def resize_pos_embed(pos_embed: jax.Array, grid: tuple[int, int]) -> jax.Array:
    """(1, 1+P*P, D) -> (1, 1+h*w, D): the patch part resized as a P x P grid to `grid` (nearest), cls kept."""
    num = pos_embed.shape[1] - 1
    side = int(round(num**0.5))
    if side * side != num:
        raise ValueError(f"pos_embed has {num} patch positions; resizing needs a square grid")
    rows, cols = nearest_indices(side, grid[0]), nearest_indices(side, grid[1])
    index = (rows[:, None] * side + cols[None, :]).reshape(-1)
    return jnp.concatenate([pos_embed[:, :1], pos_embed[:, 1 + index]], axis=1)


def resize_time_embed(time_embed: jax.Array, num_frames: int) -> jax.Array:
    """(1, T0, D) -> (1, T, D), nearest."""
    return time_embed[:, nearest_indices(time_embed.shape[1], num_frames)]


def drop_path(x: jax.Array, rate: float, rng: jax.Array | None, sample_dims: int) -> jax.Array:
    """Stochastic depth: zeroes whole samples (the first `sample_dims` axes index a sample) with probability
    `rate` and rescales the kept ones by 1 / (1 - rate); identity when rng is None or rate is 0."""
    if rng is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(rng, 1.0 - rate, x.shape[:sample_dims] + (1,) * (x.ndim - sample_dims))
    return jnp.where(keep, x / (1.0 - rate), 0.0).astype(x.dtype)


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection laid out [q | k | v], then heads. x: (..., L, D)."""

    num_heads: int
    implementation: str = "xla"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        *batch, length, width = x.shape
        head_dim = width // self.num_heads
        qkv = nn.Dense(3 * width, dtype=self.dtype, kernel_init=_dense_init, name="qkv")(x)
        qkv = qkv.reshape(-1, length, 3, self.num_heads, head_dim)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        out = jax.nn.dot_product_attention(q, k, v, implementation=self.implementation)
        out = out.reshape(*batch, length, width)
        return nn.Dense(width, dtype=self.dtype, kernel_init=_dense_init, name="proj")(out)


class Mlp(nn.Module):
    hidden: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        width = x.shape[-1]
        x = nn.Dense(self.hidden, dtype=self.dtype, kernel_init=_dense_init, name="fc1")(x)
        x = nn.gelu(x, approximate=False)  # the reference's nn.GELU is the exact (erf) one
        return nn.Dense(width, dtype=self.dtype, kernel_init=_dense_init, name="fc2")(x)


class Block(nn.Module):
    """One TimeSformer block. cls: (B', 1, D), patches: (B', T, N, D) -> the same shapes.

    For 'space_only' B' = B*T and T = 1 (each frame is its own clip); the other types keep B' = B.
    """

    num_heads: int
    attention_type: str
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.0
    zero_temporal_fc: bool = True
    implementation: str = "xla"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, cls, patches, train: bool):
        b, t, n, d = patches.shape
        attention = lambda name: Attention(self.num_heads, self.implementation, self.dtype, name=name)  # noqa: E731
        norm = lambda name: nn.LayerNorm(LAYERNORM_EPS, dtype=self.dtype, name=name)  # noqa: E731
        rng = lambda: self.make_rng("dropout") if train and self.drop_path_rate > 0 else None  # noqa: E731
        if self.attention_type == "divided_space_time":
            # Temporal: every patch position attends over the T frames.
            xt = patches.transpose(0, 2, 1, 3)  # (B, N, T, D)
            res = drop_path(attention("temporal_attn")(norm("temporal_norm1")(xt)), self.drop_path_rate, rng(), 2)
            fc_init = nn.initializers.zeros if self.zero_temporal_fc else _dense_init
            res = nn.Dense(d, dtype=self.dtype, kernel_init=fc_init, name="temporal_fc")(res)
            patches = patches + res.transpose(0, 2, 1, 3)
            # Spatial: every frame attends over its N patches and its own copy of the cls token.
            xs = jnp.concatenate([jnp.broadcast_to(cls[:, None], (b, t, 1, d)), patches], axis=2)  # (B, T, 1+N, D)
            res = drop_path(attention("attn")(norm("norm1")(xs)), self.drop_path_rate, rng(), 2)
            cls = cls + jnp.mean(res[:, :, :1], axis=1)
            patches = patches + res[:, :, 1:]
            tokens = jnp.concatenate([cls, patches.reshape(b, t * n, d)], axis=1)
        else:  # space_only (per frame, t = 1) and joint_space_time: one attention over all tokens
            tokens = jnp.concatenate([cls, patches.reshape(b, t * n, d)], axis=1)
            tokens = tokens + drop_path(attention("attn")(norm("norm1")(tokens)), self.drop_path_rate, rng(), 1)
        mlp = Mlp(int(d * self.mlp_ratio), self.dtype, name="mlp")
        tokens = tokens + drop_path(mlp(norm("norm2")(tokens)), self.drop_path_rate, rng(), 1)
        return tokens[:, :1], tokens[:, 1:].reshape(b, t, n, d)


def validate(fields: dict[str, Any], input_shape: tuple[int, int, int]) -> None:
    """Config checks run before compiling (the registry's `validate` hook); ValueError names the key."""
    _, height, width = input_shape
    key = "config.model.timesformer"
    if fields["attention_type"] not in ATTENTION_TYPES:
        raise ValueError(f"{key}.attention_type={fields['attention_type']!r}: expected one of {ATTENTION_TYPES}")
    if fields["attention_impl"] not in ATTENTION_IMPLS:
        raise ValueError(f"{key}.attention_impl={fields['attention_impl']!r}: expected one of {ATTENTION_IMPLS}")
    if fields["remat_policy"] not in REMAT_POLICIES:
        raise ValueError(f"{key}.remat_policy={fields['remat_policy']!r}: expected one of {REMAT_POLICIES}")
    if fields["width"] % fields["num_heads"]:
        raise ValueError(f"{key}.num_heads={fields['num_heads']}: expected a divisor of width={fields['width']}")
    patch = fields["patch_size"]
    if patch < 1 or height % patch or width % patch:
        raise ValueError(f"{key}.patch_size={patch}: expected a divisor of the frame size {height}x{width}")
    if fields["image_size"] % patch:
        raise ValueError(f"{key}.image_size={fields['image_size']}: expected a multiple of patch_size={patch}")


@register_backbone(
    "timesformer", validate=validate, converter="vmp_jax.convert.timesformer", head=("head",), uses_batchnorm=False
)
class TimeSformer(nn.Module):
    """clips: (B, T, H, W, 3) standardised float -> logits (B, num_classes) float32.

    TimeSformer-Base is the default (12 blocks of width 768, 12 heads, 16x16 patches, 224^2 and 8 frames for the
    embeddings' sizes); -HR is image_size=448, num_frames=16; -L num_frames=96. `image_size`/`num_frames` only set
    the shapes of `pos_embed`/`time_embed`: other clip sizes are accepted and the embeddings resized.
    `attention_impl` picks `jax.nn.dot_product_attention`'s implementation ('cudnn': fused flash attention on
    NVIDIA GPUs in bf16/fp16); `remat_policy` rematerialises each block under that `jax.checkpoint_policies` name.
    """

    num_classes: int
    depth: int = 12
    width: int = 768
    num_heads: int = 12
    patch_size: int = 16
    image_size: int = 224
    num_frames: int = 8
    attention_type: str = "divided_space_time"
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.1
    attention_impl: str = "xla"
    remat_policy: str = ""
    dtype: Any = jnp.float32
    bn_axis_name: str | None = None  # no BatchNorm; part of the backbone contract

    @nn.compact
    def __call__(self, clips, train: bool):
        b, t, h, w, _ = clips.shape
        p, d = self.patch_size, self.width
        if h % p or w % p or h < p:
            raise ValueError(f"clips of {h}x{w} pixels; TimeSformer(patch_size={p}) expects multiples of {p}")
        x = nn.Conv(d, (p, p), strides=(p, p), padding="VALID", dtype=self.dtype, name="patch_embed")(
            clips.astype(self.dtype).reshape(b * t, h, w, 3)
        )
        grid = x.shape[1:3]
        x = x.reshape(b, t, grid[0] * grid[1], d)
        num_patches = (self.image_size // p) ** 2
        cls_token = self.param("cls_token", nn.initializers.truncated_normal(INIT_STD), (1, 1, d), jnp.float32)
        pos_embed = self.param(
            "pos_embed", nn.initializers.truncated_normal(INIT_STD), (1, 1 + num_patches, d), jnp.float32
        )
        if pos_embed.shape[1] != 1 + x.shape[2]:
            pos_embed = resize_pos_embed(pos_embed, grid)
        pos_embed = pos_embed.astype(self.dtype)
        cls = jnp.broadcast_to(cls_token.astype(self.dtype) + pos_embed[:, :1], (b, 1, d))
        x = x + pos_embed[:, None, 1:]
        if self.attention_type != "space_only":
            time_embed = self.param("time_embed", nn.initializers.zeros, (1, self.num_frames, d), jnp.float32)
            if time_embed.shape[1] != t:
                time_embed = resize_time_embed(time_embed, t)
            x = x + time_embed.astype(self.dtype)[:, :, None]
        else:  # every frame is a clip of its own, with its own cls token
            cls = jnp.broadcast_to(cls[:, None], (b, t, 1, d)).reshape(b * t, 1, d)
            x = x.reshape(b * t, 1, -1, d)

        block = Block
        if self.remat_policy:
            block = nn.remat(Block, static_argnums=(3,), policy=getattr(jax.checkpoint_policies, self.remat_policy))
        rates = np.linspace(0.0, self.drop_path_rate, self.depth) if self.depth > 1 else [0.0]
        for i in range(self.depth):
            cls, x = block(
                self.num_heads,
                self.attention_type,
                self.mlp_ratio,
                float(rates[i]),
                zero_temporal_fc=i > 0,
                implementation=self.attention_impl,
                dtype=self.dtype,
                name=f"blocks_{i}",
            )(cls, x, train)
        cls = cls[:, 0]
        if self.attention_type == "space_only":
            cls = jnp.mean(cls.reshape(b, t, d), axis=1)  # the frames' predictions averaged
        cls = nn.LayerNorm(LAYERNORM_EPS, dtype=self.dtype, name="norm")(cls)
        head = nn.Dense(self.num_classes, dtype=self.dtype, kernel_init=_dense_init, name="head")
        return head(cls).astype(jnp.float32)
