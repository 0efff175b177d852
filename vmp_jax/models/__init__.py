"""Backbones and the classifier that puts the motion prompt in front of them."""
from vmp_jax.models.classifier import BACKBONES, VideoClassifier, register_backbone
from vmp_jax.models.x3d import X3D, native_input, stage_depths
from vmp_jax.models.tiny import TinyVideoNet

__all__ = ["BACKBONES", "VideoClassifier", "TinyVideoNet", "X3D", "native_input", "register_backbone", "stage_depths"]
