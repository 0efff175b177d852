"""vmp_jax: Video Motion Prompts (Chen, Wang, Koniusz, Gedeon, ACML 2024) in JAX/Flax.

The public API is named below and loaded on first use, so that importing a part of the package (a config reading
`vmp_jax.data.builders`, a command's `--help`) does not import the models and Flax.
"""

import importlib

_API = {
    "vmp_jax.models": ("BACKBONES", "X3D", "VideoClassifier", "register_backbone"),
    "vmp_jax.motion_prompt": (
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
    ),
}
_HOME = {name: module for module, names in _API.items() for name in names}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module 'vmp_jax' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
