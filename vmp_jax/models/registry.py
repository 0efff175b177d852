"""The backbone registry: everything the rest of vmp_jax needs to know about a backbone, under its name.

A backbone file registers its Linen module class with `@register_backbone(name, ...)`; the trainer, the config
defaults, pretrained-checkpoint loading, export and prediction then dispatch on `config.model.backbone` and name
no backbone themselves. The module contract: `__call__(clips, train)` maps `(B, T, H, W, 3)` to logits
`(B, num_classes)` float32, and the constructor takes `num_classes`, `dtype` and `bn_axis_name` (the mapped axis
name, or tuple of names, to sync BatchNorm statistics over; None: per device) plus the
backbone's own fields, whose defaults become `config.model.<name>.*`.

A converter (optional) links the backbone to PyTorch checkpoints. It is a module, or its import path (imported on
first use, so that torch-side code loads only when needed), with:
  KEY_FORMATS                             the state-dict key families it reads (auto-detected) and writes
  from_torch(state_dict, **fields) -> {'params'[, 'batch_stats']}   NumPy variables of the backbone module built
                                          with `fields` (its config keys); ValueError on any mismatch
  to_torch(variables, **fields) -> {name: np.ndarray}               the inverse, in PyTorch layouts
  key_format(**fields) -> str             the key family `to_torch` writes for these fields
and optionally, where the backbone's reference code keeps a VMP layer's params its own way:
  split_vmp(state_dict) -> (backbone state dict, {param name: array})   a whole-model checkpoint taken apart
  join_vmp(state_dict, vmp_params, **fields) -> state_dict              `to_torch`'s output + the layer's params
(without them, `vmp_jax.convert.classifier` writes and reads the layer's params as `vmp.<name>`).
Converters read state dicts already unwrapped by `vmp_jax.convert.torch_io` and use its layout helpers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import flax.linen as nn

# Constructor fields every backbone takes from the classifier; the rest are the backbone's own config keys.
CLASSIFIER_FIELDS = ("num_classes", "dtype", "bn_axis_name", "parent", "name")
CONFIG_TYPES = (bool, int, float, str, tuple)

Validate = Callable[[Mapping[str, Any], tuple[int, int, int]], None]


@dataclasses.dataclass(frozen=True)
class Backbone:
    """A registered backbone. `validate(fields, (T, H, W))` raises ValueError naming the offending config key
    (`model.<name>.<field>`, `num_frames`, ...) for a combination the module cannot take, before anything compiles;
    `head` names the top-level parameter collections re-initialised when a checkpoint has another class count."""

    name: str
    module: type[nn.Module]
    validate: Validate | None = None
    converter: Any = None  # a converter module or its import path (module docstring); None: no PyTorch link
    head: tuple[str, ...] = ()
    uses_batchnorm: bool = True

    @property
    def defaults(self) -> dict[str, Any]:
        """The module's own fields and their defaults: the backbone's config keys `model.<name>.*`."""
        out = {}
        for field in dataclasses.fields(self.module):
            if field.name in CLASSIFIER_FIELDS or not field.init:
                continue
            if field.default is dataclasses.MISSING or not isinstance(field.default, CONFIG_TYPES):
                raise ValueError(
                    f"backbone {self.name!r}: field {self.module.__name__}.{field.name} needs a default "
                    f"of type {', '.join(t.__name__ for t in CONFIG_TYPES)} to be a config key"
                )
            out[field.name] = field.default
        return out

    def load_converter(self) -> Any:
        """The converter module (imported now when registered by path); ValueError when there is none."""
        if self.converter is None:
            raise ValueError(f"backbone {self.name!r} has no PyTorch converter")
        if isinstance(self.converter, str):
            return importlib.import_module(self.converter)
        return self.converter


BACKBONES: dict[str, type[nn.Module]] = {}  # name -> module class (the short view; `entry(name)` has the rest)
_ENTRIES: dict[str, Backbone] = {}


def register_backbone(
    name: str,
    *,
    validate: Validate | None = None,
    converter: Any = None,
    head: tuple[str, ...] = (),
    uses_batchnorm: bool = True,
) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator adding a backbone under `name` (see `Backbone`); a name can be registered once."""

    def add(cls: type[nn.Module]) -> type[nn.Module]:
        if name in BACKBONES and BACKBONES[name] is not cls:
            raise ValueError(f"backbone name {name!r} is already registered to {BACKBONES[name].__name__}")
        entry = Backbone(name, cls, validate, converter, tuple(head), uses_batchnorm)
        entry.defaults  # noqa: B018  (fails now, naming the field, rather than when a config is built)
        BACKBONES[name] = cls
        _ENTRIES[name] = entry
        return cls

    return add


def unregister_backbone(name: str) -> None:
    BACKBONES.pop(name, None)
    _ENTRIES.pop(name, None)


@contextlib.contextmanager
def registered_backbone(name: str, module: type[nn.Module], **options: Any) -> Iterator[Backbone]:
    """Registers `module` as `name` (options as in `register_backbone`) for the `with` block only."""
    register_backbone(name, **options)(module)
    try:
        yield _ENTRIES[name]
    finally:
        unregister_backbone(name)


def entry(name: str) -> Backbone:
    """The registered backbone `name`; ValueError naming the registered ones otherwise."""
    if name not in _ENTRIES:
        raise ValueError(f"backbone={name!r}; expected one of {sorted(_ENTRIES)}")
    return _ENTRIES[name]


def names() -> list[str]:
    return sorted(_ENTRIES)
