"""Backbones and the classifier that puts the motion prompt in front of them."""
from vmp_jax.models.x3d import X3D, native_input, stage_depths

__all__ = ["X3D", "native_input", "stage_depths"]
