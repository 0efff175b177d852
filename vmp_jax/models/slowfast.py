"""SlowFast (Feichtenhofer et al., ICCV 2019) in Flax Linen, number for number PyTorchVideo's `create_slowfast` and
PySlowFast's `SlowFast` (ResNet-50/101 bottlenecks, 8x8 and 4x16 settings).

One clip `(B, T, H, W, 3)` comes in; the split into pathways happens here, as PySlowFast's `PackPathway` does it:
the fast pathway takes all T frames, the slow one T/alpha frames at indices `linspace(0, T-1, T/alpha)` (rounded
down). With the motion prompt layer in front, both pathways take their frames from the T prompts.

Every convolution is channels-last and keeps nn.Conv's 3-D kernel shape `(kt, kh, kw, Cin, Cout)` so checkpoints
map one to one, but none runs as an XLA 3-D convolution. A kt x 1 x 1 conv is the kt temporally shifted copies of
the input stacked on channels times one matrix; a 1 x kh x kw conv is a 2-D conv over the B*T frames
(`vmp_jax.ops.spatial_conv`); the fast stem's 5x7x7 conv is both (the 5 shifted copies of 3 channels, then a 2-D
conv). Forward + both gradients against XLA:CPU's 3-D conv (`benchmarks/slowfast.py --convs`, 2-core CPU, 8x8 R50
shapes at 112²): the fast stem 28x and the strided 7x1x1 fusion 32x faster, a strided 1x3x3 conv_b 8x; a stride-1
3x1x1 conv_a is on par (0.9x at 32 channels, 1.8x at 576), and one form for all keeps the code simple.

Like our X3D, the head averages over all of T, H, W where PyTorchVideo's `AvgPool3d` has a kernel fixed from the
native 32x224² input: identical at the native size, one prediction per clip at any other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
from jax import lax

from vmp_jax.models.registry import register_backbone
from vmp_jax.ops import spatial_conv

Dtype = Any

DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
# Temporal kernel of each stage's conv_a, res2..res5 (the paper's Table 1).
SLOW_TEMPORAL = (1, 1, 3, 3)
FAST_TEMPORAL = (3, 3, 3, 3)
STEM_TEMPORAL = (1, 5)  # slow, fast

# PyTorch's kaiming_normal_(mode='fan_out') used by PyTorchVideo for convs; its Linear head gets N(0, 0.01).
_conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def temporal_stack(x: jnp.ndarray, kt: int, stride: int = 1) -> jnp.ndarray:
    """(B, T, H, W, C) -> (B, T', H, W, kt*C): the kt frames under each output position of a temporal window
    (PyTorch padding kt//2, stride `stride`), stacked on channels tap by tap."""
    if kt == 1 and stride == 1:
        return x
    pad = kt // 2
    t_out = (x.shape[1] + 2 * pad - kt) // stride + 1
    xp = jnp.pad(x, ((0, 0), (pad, pad), (0, 0), (0, 0), (0, 0)))
    taps = [lax.slice_in_dim(xp, i, i + (t_out - 1) * stride + 1, stride, axis=1) for i in range(kt)]
    return taps[0] if kt == 1 else jnp.concatenate(taps, axis=-1)


def max_pool_3x3_s2(x: jnp.ndarray) -> jnp.ndarray:
    """PyTorch's MaxPool3d((1, 3, 3), (1, 2, 2), padding (0, 1, 1)): (B, T, H, W, C) -> (B, T, ceil(H/2), ceil(W/2), C).

    The maximum of the 9 strided windows: its gradient is elementwise selects, where XLA:CPU's select-and-scatter
    (`nn.max_pool`'s gradient) took 10x longer on the slow pathway's stem (0.17 s vs 0.016 s, 8x56²x64). Ties split
    the gradient where PyTorch gives it to one element; after the ReLU before the pool, ties are zeros, whose
    gradient the ReLU stops either way.
    """
    b, t, h, w, c = x.shape
    oh, ow = (h - 1) // 2 + 1, (w - 1) // 2 + 1
    xp = jnp.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-jnp.inf)
    out = None
    for i in range(3):
        for j in range(3):
            window = lax.slice(
                xp, (0, 0, i, j, 0), (b, t, i + 2 * (oh - 1) + 1, j + 2 * (ow - 1) + 1, c), (1, 1, 2, 2, 1)
            )
            out = window if out is None else jnp.maximum(out, window)
    return out


class Conv(nn.Module):
    """A 3-D conv with PyTorch padding k//2, no bias, run as matmuls and 2-D convs (module docstring).
    x: (B, T, H, W, Cin) -> (B, T', H', W', features); kernel param (kt, kh, kw, Cin, features)."""

    features: int
    kernel_size: Sequence[int] = (1, 1, 1)
    strides: Sequence[int] = (1, 1, 1)
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        kt, kh, kw = self.kernel_size
        st, sh, sw = self.strides
        cin = x.shape[-1]
        kernel = self.param("kernel", _conv_init, (kt, kh, kw, cin, self.features), jnp.float32)
        x = temporal_stack(x.astype(self.dtype), kt, st)
        # Tap-major channels (tap i's Cin channels, then tap i+1's) match the kernel moved to (kh, kw, kt*Cin, O).
        kernel = kernel.transpose(1, 2, 0, 3, 4).reshape(1, kh, kw, kt * cin, self.features).astype(self.dtype)
        if kh == kw == 1:  # no spatial padding: a spatial stride only subsamples
            return jnp.dot(x[:, :, ::sh, ::sw], kernel[0, 0, 0])
        return spatial_conv(x, kernel, (sh, sw))


def _bn(train: bool, dtype: Dtype, axis_name: str | None, name: str) -> nn.BatchNorm:
    # PyTorch momentum 0.1 == Flax momentum 0.9 (weight of the old running value); eps 1e-5 as in both references.
    return nn.BatchNorm(
        use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=dtype, axis_name=axis_name, name=name
    )


class Bottleneck(nn.Module):
    """kt x 1 x 1 conv_a -> BN -> ReLU -> 1x3x3 conv_b (spatial stride) -> BN -> ReLU -> 1x1x1 conv_c -> BN,
    + shortcut (1x1x1 conv + BN when the shape changes), ReLU. x: (B, T, H, W, C) -> (B, T, H', W', width)."""

    width: int
    inner: int
    temporal_kernel: int
    spatial_stride: int
    dtype: Dtype = jnp.float32
    bn_axis_name: str | None = None

    @nn.compact
    def __call__(self, x, train: bool):
        bn = lambda name: _bn(train, self.dtype, self.bn_axis_name, name)
        s = self.spatial_stride
        shortcut = x
        if x.shape[-1] != self.width or s > 1:
            shortcut = bn("branch1_norm")(Conv(self.width, strides=(1, s, s), dtype=self.dtype, name="branch1_conv")(x))
        y = Conv(self.inner, (self.temporal_kernel, 1, 1), dtype=self.dtype, name="conv_a")(x)
        y = nn.relu(bn("norm_a")(y))
        y = Conv(self.inner, (1, 3, 3), (1, s, s), dtype=self.dtype, name="conv_b")(y)
        y = nn.relu(bn("norm_b")(y))
        y = bn("norm_c")(Conv(self.width, dtype=self.dtype, name="conv_c")(y))
        return nn.relu(shortcut.astype(y.dtype) + y)


def slow_indices(num_frames: int, alpha: int) -> list[int]:
    """Frames of the slow pathway: PySlowFast's `linspace(0, T-1, T // alpha).long()`, in exact integers."""
    n = num_frames // alpha
    if n <= 1:
        return [0] * n
    return [k * (num_frames - 1) // (n - 1) for k in range(n)]


def stage_depths(depth: int, depths: Sequence[int] = ()) -> tuple[int, ...]:
    """Blocks per stage res2..res5: R50 (3, 4, 6, 3), R101 (3, 4, 23, 3), or `depths` when given."""
    if depths:
        return tuple(depths)
    if depth not in DEPTHS:
        raise ValueError(f"depth={depth!r}; expected one of {sorted(DEPTHS)}")
    return DEPTHS[depth]


def validate(fields, input_shape: tuple[int, int, int]) -> None:
    """T a multiple of alpha, a known depth (or 4 stage depths), widths divisible by beta_inv, frames >= 32x32."""
    get = lambda key, default: fields.get(key, default)
    alpha, beta_inv, width = get("alpha", 4), get("beta_inv", 8), get("width", 64)
    num_frames, height, frame_width = input_shape
    if alpha < 1 or num_frames % alpha:
        raise ValueError(
            f"num_frames={num_frames} with config.model.slowfast.alpha={alpha}: SlowFast needs T a "
            "multiple of alpha (the slow pathway takes every alpha-th frame); change num_frames or "
            "config.model.slowfast.alpha"
        )
    depths = tuple(get("stage_depths", ()))
    if depths and (len(depths) != 4 or min(depths) < 1):
        raise ValueError(
            f"config.model.slowfast.stage_depths={depths}: expected 4 positive ints (res2..res5), or () for the depth's"
        )
    if not depths and get("depth", 50) not in DEPTHS:
        raise ValueError(f"config.model.slowfast.depth={get('depth', 50)!r}: expected one of {sorted(DEPTHS)}")
    if beta_inv < 1 or width % beta_inv:
        raise ValueError(
            f"config.model.slowfast.width={width} is not a multiple of config.model.slowfast.beta_inv={beta_inv}"
        )
    if get("fusion_kernel", 7) % 2 != 1:
        raise ValueError(f"config.model.slowfast.fusion_kernel={get('fusion_kernel', 7)}: expected an odd size")
    if min(height, frame_width) < 32:
        raise ValueError(
            f"frames of {height}x{frame_width} for SlowFast: expected H, W >= 32 (its total stride); "
            "set the data's frame size (e.g. config.data.crop_size) to at least 32"
        )


@register_backbone("slowfast", validate=validate, converter="vmp_jax.convert.slowfast", head=("head_proj",))
class SlowFast(nn.Module):
    """SlowFast R50/R101. clips: (B, T, H, W, 3) float, T % alpha == 0, H, W >= 32 -> logits (B, num_classes) f32.

    The published networks: `depth` 50 or 101, `alpha` 4 (8x8: T=32) or 8 (4x16: T=32), `beta_inv` 8,
    `fusion_kernel` 7 (8x8 R50) or 5 (4x16 R50, 8x8 R101). `stage_depths` (blocks in res2..res5, () = the depth's)
    and `width` (slow stem channels, 64 published; every width scales with it) make smaller networks for tests.
    `dtype` is the compute dtype; parameters and BN statistics stay float32. `bn_axis_name` syncs BN statistics
    over a mapped axis (e.g. 'data' inside `jax.shard_map`).
    """

    num_classes: int = 400
    depth: int = 50
    alpha: int = 4
    beta_inv: int = 8
    fusion_kernel: int = 7
    fusion_channel_ratio: int = 2
    stage_depths: tuple = ()
    width: int = 64
    dropout_rate: float = 0.5
    dtype: Dtype = jnp.float32
    bn_axis_name: str | None = None

    @nn.compact
    def __call__(self, clips, train: bool):
        if clips.ndim != 5 or clips.shape[-1] != 3:
            raise ValueError(f"clips have shape {clips.shape}; expected (B, T, H, W, 3)")
        validate(
            {
                "alpha": self.alpha,
                "beta_inv": self.beta_inv,
                "width": self.width,
                "depth": self.depth,
                "stage_depths": self.stage_depths,
                "fusion_kernel": self.fusion_kernel,
            },
            clips.shape[1:4],
        )
        depths = stage_depths(self.depth, self.stage_depths)
        bn = lambda name: _bn(train, self.dtype, self.bn_axis_name, name)
        x = clips.astype(self.dtype)
        slow = jnp.take(x, jnp.asarray(slow_indices(x.shape[1], self.alpha)), axis=1)
        fast = x
        pathways = {"slow": slow, "fast": fast}
        widths = {"slow": self.width, "fast": self.width // self.beta_inv}
        for (p, y), kt in zip(list(pathways.items()), STEM_TEMPORAL):
            y = Conv(widths[p], (kt, 7, 7), (1, 2, 2), dtype=self.dtype, name=f"{p}_stem_conv")(y)
            y = nn.relu(bn(f"{p}_stem_norm")(y))
            pathways[p] = max_pool_3x3_s2(y)
        slow, fast = self._fuse(0, pathways["slow"], pathways["fast"], train)
        for s, depth in enumerate(depths):
            out = 4 * self.width * 2**s
            for p, temporal in (("slow", SLOW_TEMPORAL), ("fast", FAST_TEMPORAL)):
                y = slow if p == "slow" else fast
                width = out if p == "slow" else out // self.beta_inv
                for j in range(depth):
                    y = Bottleneck(
                        width,
                        width // 4,
                        temporal[s],
                        spatial_stride=2 if s > 0 and j == 0 else 1,
                        dtype=self.dtype,
                        bn_axis_name=self.bn_axis_name,
                        name=f"{p}_res{s + 2}_block{j}",
                    )(y, train)
                slow, fast = (y, fast) if p == "slow" else (slow, y)
            if s < 3:
                slow, fast = self._fuse(s + 1, slow, fast, train)
        pooled = [jnp.mean(y.astype(jnp.float32), axis=(1, 2, 3)) for y in (slow, fast)]
        x = jnp.concatenate(pooled, axis=-1).astype(self.dtype)
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        x = nn.Dense(self.num_classes, kernel_init=nn.initializers.normal(0.01), dtype=self.dtype, name="head_proj")(x)
        return x.astype(jnp.float32)

    def _fuse(self, k: int, slow, fast, train: bool):
        """Fast -> slow lateral connection k: fusion_kernel x 1 x 1 conv with temporal stride alpha, BN, ReLU,
        concatenated onto the slow pathway's channels."""
        f = Conv(
            fast.shape[-1] * self.fusion_channel_ratio,
            (self.fusion_kernel, 1, 1),
            (self.alpha, 1, 1),
            dtype=self.dtype,
            name=f"fuse{k}_conv",
        )(fast)
        f = nn.relu(_bn(train, self.dtype, self.bn_axis_name, f"fuse{k}_norm")(f))
        return jnp.concatenate([slow, f.astype(slow.dtype)], axis=-1), fast
