"""X3D (Feichtenhofer, CVPR 2020) in Flax Linen, number for number the network of PyTorchVideo's `create_x3d`.

Layout is channels-last: clips `(B, T, H, W, 3)`. Every depthwise conv goes through `vmp_jax.ops.depthwise_conv3d`,
so the model is fast on CPU as well as on accelerators. Parameter names follow PyTorchVideo's module names where
that is unambiguous, so `vmp_jax.convert` can map checkpoints one to one.

One deliberate difference: the head averages over all of T, H, W (global pooling) where PyTorchVideo uses an
`AvgPool3d` whose kernel is fixed from the native input size. At native sizes (the pool covers the whole map) the
two are identical; at other sizes ours still gives one prediction per clip.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from vmp_jax.models.registry import register_backbone
from vmp_jax.ops import SpatialConv, depthwise_conv3d

Dtype = Any

# variant -> (depth factor, native (T, H=W)). Width factor 2.0 for all of them. 'xxs' is not a published model:
# X3D-XS contracted along X3D's depth axis to one block per stage (factor 0.2: ceil(0.2 * [1, 2, 5, 3]) = 1), i.e.
# PyTorchVideo's create_x3d(depth_factor=0.2). Trained from scratch on the procedural default it learns in a few
# hundred steps, where the 26 blocks of XS stay at chance for 400 steps; no pretrained checkpoint exists for it.
VARIANTS = {
    "xxs": (0.2, (4, 160)),
    "xs": (2.2, (4, 160)),
    "s": (2.2, (13, 160)),
    "m": (2.2, (16, 224)),
    "l": (5.0, (16, 312)),
}
STAGE_WIDTHS = (24, 48, 96, 192)
BASE_DEPTHS = (1, 2, 5, 3)
STEM_WIDTH = 24
BOTTLENECK_FACTOR = 2.25
SE_RATIO = 0.0625
HEAD_WIDTH = 2048

# PyTorch's kaiming_normal_(mode='fan_out') used by PyTorchVideo for convs; Linear heads get N(0, 0.01).
_conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def round_width(width: float, multiplier: float, min_width: int = 8, divisor: int = 8) -> int:
    """Width rounding of PyTorchVideo/PySlowFast: nearest multiple of `divisor`, at least `min_width`, >= 90%."""
    width *= multiplier
    out = max(min_width, int(width + divisor / 2) // divisor * divisor)
    if out < 0.9 * width:
        out += divisor
    return int(out)


def stage_depths(variant: str) -> tuple[int, ...]:
    """Blocks per stage, ceil(d * [1, 2, 5, 3]): XS/S/M (3, 5, 11, 7), L (5, 10, 25, 15), XXS (1, 1, 1, 1)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant={variant!r}; expected one of {sorted(VARIANTS)}")
    d = VARIANTS[variant][0]
    return tuple(int(math.ceil(d * n)) for n in BASE_DEPTHS)


def native_input(variant: str) -> tuple[int, int, int]:
    """(T, H, W) the variant was trained at: XS 4x160², S 13x160², M 16x224², L 16x312² (XXS: XS's)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant={variant!r}; expected one of {sorted(VARIANTS)}")
    t, s = VARIANTS[variant][1]
    return t, s, s


class DepthwiseConv3D(nn.Module):
    """Depthwise 3-D conv, PyTorch padding k//2, no bias. x: (B, T, H, W, C) -> (B, T', H', W', C)."""

    kernel_size: Sequence[int]
    strides: Sequence[int] = (1, 1, 1)
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        fan = math.prod(self.kernel_size)
        kernel = self.param(
            "kernel", nn.initializers.normal(math.sqrt(2.0 / fan)), (*self.kernel_size, x.shape[-1]), jnp.float32
        )
        return depthwise_conv3d(x.astype(self.dtype), kernel.astype(self.dtype), self.strides)


class PointwiseConv(nn.Module):
    """1x1x1 conv, no bias, optional spatial stride, as a matmul. x: (B, T, H, W, C) -> (B, T, H', W', features)."""

    features: int
    spatial_stride: int = 1
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        if self.spatial_stride > 1:
            x = x[:, :, :: self.spatial_stride, :: self.spatial_stride]
        kernel = self.param("kernel", _conv_init, (x.shape[-1], self.features), jnp.float32)
        return jnp.dot(x.astype(self.dtype), kernel.astype(self.dtype))


def _bn(train: bool, dtype: Dtype, axis_name: str | None, name: str) -> nn.BatchNorm:
    # PyTorch momentum 0.1 == Flax momentum 0.9 (weight of the old running value).
    return nn.BatchNorm(
        use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=dtype, axis_name=axis_name, name=name
    )


class SqueezeExcite(nn.Module):
    """x * sigmoid(fc2(relu(fc1(mean_THW(x))))). x: (B, T, H, W, C) -> same."""

    reduced: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        s = jnp.mean(x.astype(jnp.float32), axis=(1, 2, 3), keepdims=True).astype(self.dtype)
        s = nn.relu(nn.Dense(self.reduced, kernel_init=_conv_init, dtype=self.dtype, name="fc1")(s))
        s = nn.sigmoid(nn.Dense(x.shape[-1], kernel_init=_conv_init, dtype=self.dtype, name="fc2")(s))
        return x * s


class X3DBlock(nn.Module):
    """Residual bottleneck: 1x1x1 -> BN -> ReLU -> 3x3x3 dw -> BN -> [SE] -> Swish -> 1x1x1 -> BN, + shortcut, ReLU."""

    width: int
    inner: int
    spatial_stride: int
    use_se: bool
    shortcut_bn_always: bool = False
    dtype: Dtype = jnp.float32
    bn_axis_name: str | tuple[str, ...] | None = None

    @nn.compact
    def __call__(self, x, train: bool):
        bn = lambda name: _bn(train, self.dtype, self.bn_axis_name, name)
        dim_in = x.shape[-1]
        shortcut = x
        if dim_in != self.width or self.spatial_stride > 1:
            shortcut = PointwiseConv(self.width, self.spatial_stride, self.dtype, name="branch1_conv")(x)
            if dim_in != self.width or self.shortcut_bn_always:
                shortcut = bn("branch1_norm")(shortcut)
        y = PointwiseConv(self.inner, 1, self.dtype, name="conv_a")(x)
        y = nn.relu(bn("norm_a")(y))
        y = DepthwiseConv3D((3, 3, 3), (1, self.spatial_stride, self.spatial_stride), self.dtype, name="conv_b")(y)
        y = bn("norm_b")(y)
        if self.use_se:
            y = SqueezeExcite(round_width(self.inner, SE_RATIO), self.dtype, name="se")(y)
        y = nn.swish(y)
        y = PointwiseConv(self.width, 1, self.dtype, name="conv_c")(y)
        y = bn("norm_c")(y)
        return nn.relu(shortcut.astype(y.dtype) + y)


def validate(fields, input_shape: tuple[int, int, int]) -> None:
    """A known variant, and frames of at least 32x32 (the network's total stride)."""
    if fields.get("variant", "s") not in VARIANTS:
        raise ValueError(f"config.model.x3d.variant={fields['variant']!r}: expected one of {sorted(VARIANTS)}")
    _, height, width = input_shape
    if min(height, width) < 32:
        raise ValueError(
            f"frames of {height}x{width} for X3D: expected H, W >= 32 (its total stride); "
            "set the data's frame size (e.g. config.data.crop_size) to at least 32"
        )


@register_backbone("x3d", validate=validate, converter="vmp_jax.convert.x3d", head=("head_proj",))
class X3D(nn.Module):
    """X3D-XXS/XS/S/M/L. clips: (B, T, H, W, 3) float, T >= 1, H, W >= 32 -> logits (B, num_classes) float32.

    `shortcut_bn_always=False` is PyTorchVideo's network (no BN on the shortcut of stage 1 block 0, where widths are
    equal); True is PySlowFast's (BN on every projection shortcut). Use the one matching the checkpoint's family.
    `dtype` is the compute dtype; parameters and BN statistics stay float32. `bn_axis_name` syncs BN statistics over
    a mapped axis (e.g. 'data' inside `jax.shard_map`).
    """

    variant: str = "s"
    num_classes: int = 400
    dropout_rate: float = 0.5
    dtype: Dtype = jnp.float32
    shortcut_bn_always: bool = False
    bn_axis_name: str | tuple[str, ...] | None = None

    @nn.compact
    def __call__(self, clips, train: bool):
        depths = stage_depths(self.variant)
        if clips.ndim != 5 or clips.shape[-1] != 3:
            raise ValueError(f"clips have shape {clips.shape}; expected (B, T, H, W, 3)")
        if min(clips.shape[2:4]) < 32:
            raise ValueError(f"clips have spatial size {clips.shape[2:4]}; expected H, W >= 32 (total stride 32)")
        bn = lambda name: _bn(train, self.dtype, self.bn_axis_name, name)
        x = clips.astype(self.dtype)
        # As 2-D convs over the B*T frames: XLA:CPU's 3-D conv input gradient (needed by VMP's m, n) is ~50x slower.
        x = SpatialConv(STEM_WIDTH, (3, 3), (2, 2), dtype=self.dtype, kernel_init=_conv_init, name="stem_conv_xy")(x)
        x = DepthwiseConv3D((5, 1, 1), dtype=self.dtype, name="stem_conv_t")(x)
        x = nn.relu(bn("stem_norm")(x))
        for s, (width, depth) in enumerate(zip(STAGE_WIDTHS, depths)):
            inner = int(BOTTLENECK_FACTOR * width)
            for b in range(depth):
                x = X3DBlock(
                    width,
                    inner,
                    spatial_stride=2 if b == 0 else 1,
                    use_se=b % 2 == 0,
                    shortcut_bn_always=self.shortcut_bn_always,
                    dtype=self.dtype,
                    bn_axis_name=self.bn_axis_name,
                    name=f"stage{s + 1}_block{b}",
                )(x, train)
        head_inner = int(BOTTLENECK_FACTOR * STAGE_WIDTHS[-1])
        x = PointwiseConv(head_inner, 1, self.dtype, name="head_pre_conv")(x)
        x = nn.relu(bn("head_pre_norm")(x))
        x = jnp.mean(x.astype(jnp.float32), axis=(1, 2, 3)).astype(self.dtype)
        x = nn.Dense(HEAD_WIDTH, use_bias=False, kernel_init=_conv_init, dtype=self.dtype, name="head_post_conv")(x)
        x = nn.relu(x)
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        x = nn.Dense(self.num_classes, kernel_init=nn.initializers.normal(0.01), dtype=self.dtype, name="head_proj")(x)
        return x.astype(jnp.float32)
