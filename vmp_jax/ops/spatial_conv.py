"""A 1 x kh x kw convolution of video, run as one 2-D convolution over all B*T frames.

XLA:CPU has no fast path for 3-D convolutions: a (1, 3, 3) conv on (16, 8, 64, 64, 3) took 0.09 s forward and
0.83 s for the input gradient as a 3-D conv, against 0.012 s and 0.016 s as a 2-D conv over the frames (jax 0.10.2,
2-core CPU). The input gradient matters for VMP: the prompts depend on the learnable m, n, so training
differentiates the backbone's first conv with respect to its input. Values are the same either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax


def spatial_conv(x: jax.Array, kernel: jax.Array, strides: Sequence[int] = (1, 1)) -> jax.Array:
    """x: (B, T, H, W, Cin), kernel: (1, kh, kw, Cin, Cout) -> (B, T, H', W', Cout); PyTorch padding k//2."""
    if x.ndim != 5:
        raise ValueError(f"x has shape {x.shape}; expected (B, T, H, W, C)")
    if kernel.ndim != 5 or kernel.shape[0] != 1 or kernel.shape[3] != x.shape[-1]:
        raise ValueError(f"kernel has shape {kernel.shape}; expected (1, kh, kw, {x.shape[-1]}, Cout)")
    b, t, h, w, c = x.shape
    kh, kw = kernel.shape[1:3]
    y = lax.conv_general_dilated(
        x.reshape(b * t, h, w, c),
        kernel[0],
        tuple(strides),
        ((kh // 2, kh // 2), (kw // 2, kw // 2)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    return y.reshape(b, t, *y.shape[1:])


class SpatialConv(nn.Module):
    """Linen wrapper of `spatial_conv`, no bias; the kernel has nn.Conv's 3-D shape (1, kh, kw, Cin, Cout)."""

    features: int
    kernel_size: Sequence[int] = (3, 3)
    strides: Sequence[int] = (1, 1)
    dtype: Any = jnp.float32
    kernel_init: Any = nn.initializers.variance_scaling(2.0, "fan_out", "normal")

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", self.kernel_init, (1, *self.kernel_size, x.shape[-1], self.features), jnp.float32)
        return spatial_conv(x.astype(self.dtype), kernel.astype(self.dtype), self.strides)
