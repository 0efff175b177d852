"""PyTorch checkpoints in and out: shared I/O (`torch_io`), one converter per backbone (`x3d`, `timesformer`,
`slowfast`), and the classifier-level functions that dispatch on the backbone's registry entry (`classifier`)."""

from vmp_jax.convert.classifier import classifier_to_torch, load_pretrained_backbone
from vmp_jax.convert.slowfast import slowfast_from_torch, slowfast_to_torch
from vmp_jax.convert.timesformer import timesformer_from_torch, timesformer_to_torch
from vmp_jax.convert.torch_io import load_torch_checkpoint
from vmp_jax.convert.x3d import FORMATS, detect_format, x3d_from_torch, x3d_to_torch

__all__ = [
    "FORMATS",
    "classifier_to_torch",
    "detect_format",
    "load_pretrained_backbone",
    "load_torch_checkpoint",
    "slowfast_from_torch",
    "slowfast_to_torch",
    "timesformer_from_torch",
    "timesformer_to_torch",
    "x3d_from_torch",
    "x3d_to_torch",
]
