"""Backbones, the registry they join, the classifier that puts the motion prompt in front, and the model factory.

Importing this package imports every module in it, so a backbone file dropped into `vmp_jax/models/` registers
itself with no edit elsewhere; backbones outside the package register when their module is imported (see
`config.model.backbone_module`).
"""

import importlib
import pkgutil

from vmp_jax.models.classifier import VideoClassifier
from vmp_jax.models.registry import BACKBONES, register_backbone, registered_backbone
from vmp_jax.models.slowfast import SlowFast
from vmp_jax.models.timesformer import TimeSformer
from vmp_jax.models.tiny import TinyVideoNet
from vmp_jax.models.x3d import X3D, native_input, stage_depths

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "BACKBONES",
    "VideoClassifier",
    "TinyVideoNet",
    "X3D",
    "native_input",
    "register_backbone",
    "registered_backbone",
    "SlowFast",
    "stage_depths",
    "TimeSformer",
]
