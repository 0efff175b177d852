"""VideoClassifier: the optional motion prompt layer in front of a backbone chosen by name.

Backbones join through `vmp_jax.models.registry.register_backbone` (the module contract is described there); the
classifier looks them up by name and knows none of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from vmp_jax.models import registry
from vmp_jax.motion_prompt import VideoMotionPrompt


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
    backbone: str
    backbone_kwargs: Any = ()
    use_vmp: bool = True
    vmp_kwargs: Any = ()
    dtype: Any = jnp.float32
    bn_axis_name: str | tuple[str, ...] | None = None

    @property
    def vmp_pn(self) -> str:
        """The motion prompt layer's power normalisation ('sigmoid' = the paper's)."""
        return _as_dict(self.vmp_kwargs).get("pn", "sigmoid")

    @nn.compact
    def __call__(self, frames, train: bool):
        backbone = registry.entry(self.backbone).module
        variation = jnp.zeros((), jnp.float32)
        if self.use_vmp:
            frames, variation = VideoMotionPrompt(**{"dtype": self.dtype, **_as_dict(self.vmp_kwargs)}, name="vmp")(
                frames
            )
        net = backbone(
            num_classes=self.num_classes,
            dtype=self.dtype,
            bn_axis_name=self.bn_axis_name,
            **_as_dict(self.backbone_kwargs),
            name="backbone",
        )
        return net(frames, train=train), variation
