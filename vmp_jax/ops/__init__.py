"""Building blocks shared by several models."""

from vmp_jax.ops.depthwise_conv import default_impl, depthwise_conv3d
from vmp_jax.ops.spatial_conv import SpatialConv, spatial_conv

__all__ = ["SpatialConv", "default_impl", "depthwise_conv3d", "spatial_conv"]
