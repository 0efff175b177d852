"""VideoClassifier: the optional motion prompt layer in front of a backbone chosen by name.

New backbones (TimeSformer, SlowFast, ...) join with `@register_backbone('name')` on a Linen module class whose
`__call__(clips, train)` maps `(B, T, H, W, 3)` to logits `(B, num_classes)` and whose constructor takes
`num_classes`, `dtype` and `bn_axis_name` (plus its own keyword arguments); the training code does not change.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import flax.linen as nn
import jax.numpy as jnp

from vmp_jax.models.x3d import X3D
from vmp_jax.motion_prompt import VideoMotionPrompt

BACKBONES: dict[str, type[nn.Module]] = {}


def register_backbone(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator adding a backbone to `BACKBONES` under `name`; a name can be registered once."""
    def add(cls: type[nn.Module]) -> type[nn.Module]:
        if name in BACKBONES and BACKBONES[name] is not cls:
            raise ValueError(f"backbone name {name!r} is already registered to {BACKBONES[name].__name__}")
        BACKBONES[name] = cls
        return cls
    return add


register_backbone("x3d")(X3D)


def _as_dict(kwargs: Any) -> dict[str, Any]:
    """Module fields must be hashable, so keyword arguments may come as a mapping or a tuple of (name, value)."""
    if kwargs is None:
        return {}
    return dict(kwargs.items()) if isinstance(kwargs, Mapping) else dict(kwargs)


class VideoClassifier(nn.Module):
    """frames: (B, T+1, H, W, 3) standardised with VMP, (B, T, H, W, 3) without -> (logits (B, K) f32, variation ()).

    With `use_vmp` the motion prompt layer (submodule 'vmp', params `params['vmp']['m'|'n']`) turns T+1 frames into
    T prompts for the backbone (submodule 'backbone'); without it the frames go to the backbone as given and the
    variation is 0.0. `backbone_kwargs`/`vmp_kwargs`: mapping or tuple of (name, value) pairs, passed through.
    """
    num_classes: int
    backbone: str = "x3d"
    backbone_kwargs: Any = ()
    use_vmp: bool = True
    vmp_kwargs: Any = ()
    dtype: Any = jnp.float32
    bn_axis_name: str | None = None

    @property
    def vmp_pn(self) -> str:
        """The motion prompt layer's power normalisation ('sigmoid' = the paper's)."""
        return _as_dict(self.vmp_kwargs).get("pn", "sigmoid")

    @nn.compact
    def __call__(self, frames, train: bool):
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone={self.backbone!r}; expected one of {sorted(BACKBONES)}")
        variation = jnp.zeros((), jnp.float32)
        if self.use_vmp:
            frames, variation = VideoMotionPrompt(**_as_dict(self.vmp_kwargs), name="vmp")(frames)
        net = BACKBONES[self.backbone](num_classes=self.num_classes, dtype=self.dtype,
                                      bn_axis_name=self.bn_axis_name, **_as_dict(self.backbone_kwargs),
                                      name="backbone")
        return net(frames, train=train), variation
