"""vmp_jax: Video Motion Prompts (Chen, Wang, Koniusz, Gedeon, ACML 2024) in JAX/Flax."""

from vmp_jax.models import BACKBONES, X3D, VideoClassifier, register_backbone
from vmp_jax.motion_prompt import (
    LUMA_WEIGHTS,
    POWER_NORMALISATIONS,
    MotionPrompts,
    VideoMotionPrompt,
    attention,
    frame_differences,
    luma,
    motion_prompts,
    normal_init,
    pair_prompt,
    pn_attention,
    pn_coefficients,
    slope_and_shift,
    temporal_variation,
)

__all__ = [
    "BACKBONES",
    "X3D",
    "VideoClassifier",
    "register_backbone",
    "LUMA_WEIGHTS",
    "POWER_NORMALISATIONS",
    "MotionPrompts",
    "VideoMotionPrompt",
    "attention",
    "frame_differences",
    "luma",
    "motion_prompts",
    "normal_init",
    "pair_prompt",
    "pn_attention",
    "pn_coefficients",
    "slope_and_shift",
    "temporal_variation",
]
