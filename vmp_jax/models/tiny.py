"""A small CNN backbone ('tiny'): two blocks of spatial conv (mixes channels) -> depthwise 3x3x3 conv (a
spatio-temporal filter per channel, which can be direction-selective) -> BN -> ReLU, global pooling, linear head.

For smoke runs and the training-system tests, where X3D's compile time (about a minute on a 2-core CPU) would
dominate; it obeys the backbone contract of `vmp_jax.models.classifier` like any other backbone.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from vmp_jax.models.registry import register_backbone
from vmp_jax.ops import SpatialConv, depthwise_conv3d


@register_backbone("tiny")
class TinyVideoNet(nn.Module):
    """clips: (B, T, H, W, 3) -> logits (B, num_classes) float32."""

    num_classes: int
    width: int = 8
    dropout_rate: float = 0.0
    dtype: Any = jnp.float32
    bn_axis_name: str | tuple[str, ...] | None = None

    @nn.compact
    def __call__(self, clips, train: bool):
        x = clips.astype(self.dtype)
        for width in (self.width, 2 * self.width):
            x = SpatialConv(width, (3, 3), (2, 2), dtype=self.dtype)(x)
            kernel = self.param(f"depthwise_{width}", nn.initializers.normal(math.sqrt(2.0 / 27)), (3, 3, 3, width))
            x = depthwise_conv3d(x, kernel.astype(self.dtype))
            x = nn.BatchNorm(
                use_running_average=not train,
                momentum=0.9,
                epsilon=1e-5,
                axis_name=self.bn_axis_name if train else None,
                dtype=self.dtype,
            )(x)
            x = nn.relu(x)
        x = jnp.mean(x, axis=(1, 2, 3))
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return nn.Dense(self.num_classes, dtype=self.dtype)(x).astype(jnp.float32)
