"""PyTorch TimeSformer checkpoints in and out: the reference's and Hugging Face's names <-> `TimeSformer` variables.

Three key families are read (auto-detected):
  'reference'    facebookresearch/TimeSformer `VisionTransformer` (`cls_token`, `pos_embed`, `time_embed`,
                 `patch_embed.proj.*`, `blocks.{i}.{norm1,attn.qkv,attn.proj,temporal_norm1,temporal_attn.*,
                 temporal_fc,norm2,mlp.fc1,mlp.fc2}.*`, `norm.*`, `head.*`), also inside the official VMPs
                 checkpoint, whose `model_state` holds `model.<those>` beside `vmps.m`, `vmps.n`
  'huggingface'  `transformers`' TimesformerForVideoClassification (`timesformer.embeddings.*`,
                 `timesformer.encoder.layer.{i}.*`, `timesformer.layernorm.*`, `classifier.*`)
  'vit'          ImageNet ViT in timm's names (the reference's names without `time_embed` and the temporal parts);
                 a divided space-time model gets the reference's rule: temporal attention and norm copied from the
                 spatial ones, `temporal_fc` zero, `time_embed` zero
and 'reference' (the official VMPs layout: `model.` + `vmps.m`/`vmps.n`, see `join_vmp`) or 'huggingface' is
written. Layouts: PyTorch linears are (O, I), ours (I, O); the patch conv (D, 3, p, p) is ours (p, p, 3, D).

The converter of the 'timesformer' backbone (see `vmp_jax.models.registry`), with the optional classifier hooks
`split_vmp`/`join_vmp` that place the motion prompt's m and n where the reference's whole model keeps them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
from absl import logging

from vmp_jax.convert import torch_io
from vmp_jax.models.timesformer import nearest_indices

KEY_FORMATS = ("reference", "huggingface", "vit")
WRITTEN_FORMATS = ("reference", "huggingface")
VMP_PREFIX, MODEL_PREFIX = "vmps.", "model."  # the official VMPs model: `model` (TimeSformer) and `vmps` (the layer)

_HF_BLOCK = {
    "norm1": "layernorm_before",
    "attn.qkv": "attention.attention.qkv",
    "attn.proj": "attention.output.dense",
    "temporal_norm1": "temporal_layernorm",
    "temporal_attn.qkv": "temporal_attention.attention.qkv",
    "temporal_attn.proj": "temporal_attention.output.dense",
    "temporal_fc": "temporal_dense",
    "norm2": "layernorm_after",
    "mlp.fc1": "intermediate.dense",
    "mlp.fc2": "output.dense",
}
_HF_TOP = {
    "cls_token": "timesformer.embeddings.cls_token",
    "pos_embed": "timesformer.embeddings.position_embeddings",
    "time_embed": "timesformer.embeddings.time_embeddings",
    "patch_embed.proj": "timesformer.embeddings.patch_embeddings.projection",
    "norm": "timesformer.layernorm",
    "head": "classifier",
}
_SUFFIX = {
    "norm": {"scale": "weight", "bias": "bias"},
    "dense": {"kernel": "weight", "bias": "bias"},
    "conv": {"kernel": "weight", "bias": "bias"},
}


def reference_to_hf(name: str) -> str:
    """A reference parameter name -> its Hugging Face name."""
    m = re.fullmatch(r"blocks\.(\d+)\.(.+)\.(weight|bias)", name)
    if m:
        return f"timesformer.encoder.layer.{m[1]}.{_HF_BLOCK[m[2]]}.{m[3]}"
    module, _, suffix = name.rpartition(".")
    if module in _HF_TOP:
        return f"{_HF_TOP[module]}.{suffix}"
    return _HF_TOP[name]


def hf_to_reference(name: str) -> str:
    """A Hugging Face parameter name -> the reference's (inverse of `reference_to_hf`)."""
    m = re.fullmatch(r"timesformer\.encoder\.layer\.(\d+)\.(.+)\.(weight|bias)", name)
    if m:
        inverse = {v: k for k, v in _HF_BLOCK.items()}
        if m[2] not in inverse:
            raise ValueError(f"unknown Hugging Face TimeSformer parameter {name!r}")
        return f"blocks.{m[1]}.{inverse[m[2]]}.{m[3]}"
    inverse = {v: k for k, v in _HF_TOP.items()}
    if name in inverse:
        return inverse[name]
    module, _, suffix = name.rpartition(".")
    if module in inverse:
        return f"{inverse[module]}.{suffix}"
    raise ValueError(f"unknown Hugging Face TimeSformer parameter {name!r}")


def split_vmp(state_dict: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A checkpoint's (backbone state dict, motion prompt params): the official VMPs layout's `vmps.<name>` (and
    `model.` on the rest) or ours (`vmp.<name>`); the params keep their stored shapes ((1,) in the official one)."""
    sd = torch_io.unwrap(state_dict)
    vmp = {}
    for prefix in (VMP_PREFIX, "vmp."):
        vmp.update({k[len(prefix) :]: torch_io.to_numpy(v) for k, v in sd.items() if k.startswith(prefix)})
    rest = {k: v for k, v in sd.items() if not k.startswith((VMP_PREFIX, "vmp."))}
    if rest and all(k.startswith(MODEL_PREFIX) for k in rest):
        rest = {k[len(MODEL_PREFIX) :]: v for k, v in rest.items()}
    return rest, vmp


def join_vmp(
    state_dict: Mapping[str, np.ndarray], vmp: Mapping[str, np.ndarray], **fields: Any
) -> dict[str, np.ndarray]:
    """A backbone state dict written by `to_torch` (reference names) and the motion prompt's params -> one state
    dict of the reference's whole model, the official VMPs layout: `model.<name>`, and `vmps.m`/`vmps.n` of shape
    (1,) for scalar params (a run without the layer gives `model.<name>` only, the reference's baseline)."""
    del fields  # one layout whatever the model's fields
    out = {MODEL_PREFIX + k: v for k, v in state_dict.items()}
    for name, value in vmp.items():
        value = np.asarray(value, np.float32)
        out[VMP_PREFIX + name] = value.reshape(1) if value.ndim == 0 else value
    return out


def detect_format(state_dict: Mapping[str, Any]) -> str:
    """'reference', 'huggingface' or 'vit' for a TimeSformer/ViT state dict (possibly the whole VMPs model)."""
    sd, _ = split_vmp(state_dict)
    if "timesformer.embeddings.cls_token" in sd:
        return "huggingface"
    if "cls_token" in sd and "blocks.0.attn.qkv.weight" in sd:
        return "reference" if "time_embed" in sd else "vit"
    raise ValueError(
        "state dict has neither 'cls_token' with 'blocks.0.attn.qkv.weight' (reference/ViT) nor "
        f"'timesformer.embeddings.cls_token' (Hugging Face); first keys: {sorted(sd)[:5]}"
    )


def _reference_names(sd: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Any readable family -> reference names, float32 NumPy."""
    sd, _ = split_vmp(sd)
    if detect_format(sd) == "huggingface":
        sd = {hf_to_reference(k): v for k, v in sd.items()}
    return {k: torch_io.to_numpy(v).astype(np.float32) for k, v in sd.items()}


def _modules(depth: int, attention_type: str) -> Iterator[tuple[tuple[str, ...], str, str]]:
    """(our module path, reference module name, kind) for every module with weights."""
    yield ("patch_embed",), "patch_embed.proj", "conv"
    for i in range(depth):
        names = ["norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"]
        if attention_type == "divided_space_time":
            names += ["temporal_norm1", "temporal_attn.qkv", "temporal_attn.proj", "temporal_fc"]
        for name in names:
            yield (f"blocks_{i}", *name.split(".")), f"blocks.{i}.{name}", "norm" if "norm" in name else "dense"
    yield ("norm",), "norm", "norm"
    yield ("head",), "head", "dense"


def _embeddings(attention_type: str) -> tuple[str, ...]:
    return ("cls_token", "pos_embed") + (() if attention_type == "space_only" else ("time_embed",))


def model_fields(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """The `TimeSformer` fields a checkpoint's shapes determine: depth, width, patch_size, image_size,
    num_frames (when it has `time_embed`), attention_type, num_classes."""
    sd = _reference_names(state_dict)
    width, _, patch, _ = sd["patch_embed.proj.weight"].shape
    depth = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    side = int(round((sd["pos_embed"].shape[1] - 1) ** 0.5))
    if "blocks.0.temporal_attn.qkv.weight" in sd:
        attention_type = "divided_space_time"
    else:
        attention_type = "joint_space_time" if "time_embed" in sd else "space_only"
    fields = {
        "depth": depth,
        "width": width,
        "patch_size": patch,
        "image_size": side * patch,
        "attention_type": attention_type,
        "num_classes": sd["head.weight"].shape[0],
    }
    if "time_embed" in sd:
        fields["num_frames"] = sd["time_embed"].shape[1]
    return fields


def timesformer_from_torch(
    state_dict: Mapping[str, Any],
    num_heads: int = 12,
    *,
    attention_type: str | None = None,
    image_size: int | None = None,
    num_frames: int | None = None,
) -> dict[str, dict]:
    """A reference, Hugging Face or ImageNet-ViT state dict -> `{'params'}` of `TimeSformer` (float32 NumPy).

    Depth, width, patch size and class count come from the tensors' shapes (`model_fields`); `num_heads` does not
    change any shape and must be the checkpoint's model's. `attention_type` (default: the checkpoint's)
    'divided_space_time' on ViT weights applies the reference's rule (module docstring). `image_size`/`num_frames`
    different from the checkpoint's resize `pos_embed`/`time_embed` as the reference's loader does (nearest,
    `pos_embed` as a sequence). Motion prompt params in the dict (`vmps.*`) are ignored here (`split_vmp`).
    Raises ValueError listing missing and unexpected keys.
    """
    sd = _reference_names(state_dict)
    found = model_fields(sd)
    attention_type = attention_type or found["attention_type"]
    if found["width"] % num_heads:
        raise ValueError(f"num_heads={num_heads}: expected a divisor of the checkpoint's width {found['width']}")
    if attention_type == "divided_space_time" and found["attention_type"] == "space_only":
        logging.warning(
            "ViT checkpoint for divided space-time attention: temporal attention and norms copied from "
            "the spatial ones, temporal_fc and time_embed zero (the reference's rule)."
        )
        width = found["width"]
        sd.setdefault("time_embed", np.zeros((1, num_frames or 8, width), np.float32))
        for i in range(found["depth"]):
            for ours, src in (
                ("temporal_norm1", "norm1"),
                ("temporal_attn.qkv", "attn.qkv"),
                ("temporal_attn.proj", "attn.proj"),
            ):
                for s in ("weight", "bias"):
                    sd[f"blocks.{i}.{ours}.{s}"] = sd[f"blocks.{i}.{src}.{s}"].copy()
            sd[f"blocks.{i}.temporal_fc.weight"] = np.zeros((width, width), np.float32)
            sd[f"blocks.{i}.temporal_fc.bias"] = np.zeros((width,), np.float32)
    elif attention_type == "joint_space_time" and "time_embed" not in sd:
        sd["time_embed"] = np.zeros((1, num_frames or 8, found["width"]), np.float32)
    if attention_type == "space_only":
        sd.pop("time_embed", None)
    modules = list(_modules(found["depth"], attention_type))
    expected = list(_embeddings(attention_type)) + [
        f"{name}.{theirs}" for _, name, kind in modules for theirs in _SUFFIX[kind].values()
    ]
    torch_io.check_keys(f"TimeSformer ({attention_type}) state dict", expected, sd)

    params: dict = {}
    for path, name, kind in modules:
        node = params
        for p in path:
            node = node.setdefault(p, {})
        for ours, theirs in _SUFFIX[kind].items():
            w = sd[f"{name}.{theirs}"]
            if ours == "kernel":
                w = w.transpose(2, 3, 1, 0) if kind == "conv" else w.T
            node[ours] = np.ascontiguousarray(w)
    for name in _embeddings(attention_type):
        params[name] = sd[name]
    patch = found["patch_size"]
    if image_size is not None and (image_size // patch) ** 2 + 1 != params["pos_embed"].shape[1]:
        pos = params["pos_embed"]
        index = nearest_indices(pos.shape[1] - 1, (image_size // patch) ** 2)
        params["pos_embed"] = np.concatenate([pos[:, :1], pos[:, 1 + index]], axis=1)
    if num_frames is not None and "time_embed" in params and params["time_embed"].shape[1] != num_frames:
        params["time_embed"] = params["time_embed"][:, nearest_indices(params["time_embed"].shape[1], num_frames)]
    return {"params": params}


def timesformer_to_torch(variables: Mapping[str, Any], key_format: str = "reference") -> dict[str, np.ndarray]:
    """`TimeSformer` variables -> a state dict in the reference's (default) or Hugging Face names, PyTorch layouts,
    NumPy float32 (`torch_io.tensors` makes tensors). Inverse of `timesformer_from_torch`."""
    if key_format not in WRITTEN_FORMATS:
        raise ValueError(f"key_format={key_format!r}; expected one of {WRITTEN_FORMATS}")
    params = variables["params"]
    depth = sum(1 for k in params if k.startswith("blocks_"))
    if "time_embed" not in params:
        attention_type = "space_only"
    else:
        attention_type = "divided_space_time" if "temporal_fc" in params["blocks_0"] else "joint_space_time"
    out: dict[str, np.ndarray] = {name: np.asarray(params[name], np.float32) for name in _embeddings(attention_type)}
    for path, name, kind in _modules(depth, attention_type):
        node = params
        for p in path:
            node = node[p]
        for ours, theirs in _SUFFIX[kind].items():
            w = np.asarray(node[ours], np.float32)
            if ours == "kernel":
                w = w.transpose(3, 2, 0, 1) if kind == "conv" else w.T
            out[f"{name}.{theirs}"] = np.ascontiguousarray(w)
    if key_format == "huggingface":
        out = {reference_to_hf(k): v for k, v in out.items()}
    return out


# ----------------------------------------------------------------------------- the registry's converter interface


def key_format(**_fields: Any) -> str:
    """The key family `to_torch` writes: the reference's (with `join_vmp`, the official VMPs checkpoint's layout)."""
    return "reference"


def from_torch(
    state_dict: Mapping[str, Any],
    *,
    num_heads: int = 12,
    attention_type: str = "divided_space_time",
    image_size: int = 224,
    num_frames: int = 8,
    **_other_fields: Any,
) -> dict[str, dict]:
    """`timesformer_from_torch` for a `TimeSformer` built with these config fields."""
    return timesformer_from_torch(
        state_dict, num_heads, attention_type=attention_type, image_size=image_size, num_frames=num_frames
    )


def to_torch(variables: Mapping[str, Any], **fields: Any) -> dict[str, np.ndarray]:
    return timesformer_to_torch(variables, key_format(**fields))
