"""Building blocks shared by several models."""
from vmp_jax.ops.depthwise_conv import default_impl, depthwise_conv3d

__all__ = ["default_impl", "depthwise_conv3d"]
