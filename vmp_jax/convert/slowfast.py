"""PyTorch SlowFast checkpoints in and out: PyTorchVideo and PySlowFast key names <-> `vmp_jax.models.SlowFast`.

Every conv kernel is `(O, I, T, H, W)` in PyTorch and `(T, H, W, I, O)` here (`torch_io.conv3d_*`); the classifier
is `(O, I)` / `(I, O)`. BN: weight/bias -> params scale/bias, running_mean/var -> batch_stats mean/var;
`num_batches_tracked` is ignored on the way in and written as 0 on the way out.

Two key families, auto-detected, possibly under `model_state` (PySlowFast's and PyTorchVideo's `.pyth` files):
  PyTorchVideo  blocks.0.multipathway_blocks.{0,1}.{conv,norm}, blocks.{0-3}.multipathway_fusion.{conv_fast_to_slow,
                norm}, blocks.{1-4}.multipathway_blocks.{p}.res_blocks.{j}.{branch1_conv,branch1_norm,
                branch2.{conv,norm}_{a,b,c}}, blocks.6.proj
  PySlowFast    s1.pathway{p}_stem.{conv,bn}, s{1-4}_fuse.{conv_f2s,bn}, s{2-5}.pathway{p}_res{j}.{branch1,
                branch1_bn,branch2.{a,a_bn,b,b_bn,c,c_bn}}, head.projection
Pathway p is 0 for slow and 1 for fast in both. `to_torch` writes PyTorchVideo's names, which load with
`strict=True` into `create_slowfast(model_depth=..., slowfast_fusion_conv_kernel_size=(k, 1, 1),
slowfast_fusion_conv_stride=(alpha, 1, 1))`.

The converter of the 'slowfast' backbone (`KEY_FORMATS`, `from_torch`, `to_torch`, `key_format`; see
`vmp_jax.models.registry`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from vmp_jax.convert import torch_io
from vmp_jax.models import slowfast as model_lib

KEY_FORMATS = ("pytorchvideo", "pyslowfast")
_BN_SUFFIX = {"scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}
_PATHWAYS = ("slow", "fast")
_BLOCK_PARTS = ("branch1_conv", "branch1_norm", "conv_a", "norm_a", "conv_b", "norm_b", "conv_c", "norm_c")
_PYSLOWFAST_PARTS = {
    "branch1_conv": "branch1",
    "branch1_norm": "branch1_bn",
    "conv_a": "branch2.a",
    "norm_a": "branch2.a_bn",
    "conv_b": "branch2.b",
    "norm_b": "branch2.b_bn",
    "conv_c": "branch2.c",
    "norm_c": "branch2.c_bn",
}


def _module_names(depths: Sequence[int], key_format: str) -> Iterator[tuple[tuple[str, ...], str, str]]:
    """Yields (our module path, torch module prefix, kind in 'conv' | 'bn' | 'linear') for every module."""
    pv = key_format == "pytorchvideo"
    for p, pathway in enumerate(_PATHWAYS):
        stem = f"blocks.0.multipathway_blocks.{p}" if pv else f"s1.pathway{p}_stem"
        yield (f"{pathway}_stem_conv",), f"{stem}.conv", "conv"
        yield (f"{pathway}_stem_norm",), f"{stem}.{'norm' if pv else 'bn'}", "bn"
    for k in range(4):
        fuse = f"blocks.{k}.multipathway_fusion" if pv else f"s{k + 1}_fuse"
        yield (f"fuse{k}_conv",), f"{fuse}.{'conv_fast_to_slow' if pv else 'conv_f2s'}", "conv"
        yield (f"fuse{k}_norm",), f"{fuse}.{'norm' if pv else 'bn'}", "bn"
    for s, depth in enumerate(depths):
        for p, pathway in enumerate(_PATHWAYS):
            for j in range(depth):
                block = (
                    f"blocks.{s + 1}.multipathway_blocks.{p}.res_blocks.{j}" if pv else f"s{s + 2}.pathway{p}_res{j}"
                )
                # Block 0 of every stage changes the width (and from res3 on the size): a projection shortcut.
                for part in _BLOCK_PARTS if j == 0 else _BLOCK_PARTS[2:]:
                    if pv:
                        theirs = part if part.startswith("branch1") else f"branch2.{part}"
                    else:
                        theirs = _PYSLOWFAST_PARTS[part]
                    yield (
                        (f"{pathway}_res{s + 2}_block{j}", part),
                        f"{block}.{theirs}",
                        "bn" if "norm" in part else "conv",
                    )
    yield ("head_proj",), ("blocks.6.proj" if pv else "head.projection"), "linear"


def _suffixes(kind: str) -> dict[str, str]:
    return (
        _BN_SUFFIX if kind == "bn" else {"kernel": "weight"} if kind == "conv" else {"kernel": "weight", "bias": "bias"}
    )


def detect_format(state_dict: Mapping[str, Any]) -> str:
    """'pytorchvideo' or 'pyslowfast' for a SlowFast state dict (possibly wrapped, see `torch_io.unwrap`)."""
    sd = torch_io.unwrap(state_dict)
    if "blocks.0.multipathway_blocks.0.conv.weight" in sd:
        return "pytorchvideo"
    if "s1.pathway0_stem.conv.weight" in sd:
        return "pyslowfast"
    raise ValueError(
        "state dict has neither 'blocks.0.multipathway_blocks.0.conv.weight' (PyTorchVideo SlowFast) "
        f"nor 's1.pathway0_stem.conv.weight' (PySlowFast SlowFast); first keys: {sorted(sd)[:5]}"
    )


def _fields_text(depth, alpha, beta_inv, fusion_kernel, depths, width) -> str:
    return (
        f"SlowFast R{depth} (alpha={alpha}, beta_inv={beta_inv}, fusion_kernel={fusion_kernel}, "
        f"stage_depths={tuple(depths)}, width={width})"
    )


def _expected_shapes(num_classes: int, fields: dict) -> dict[str, tuple[int, ...]]:
    """Shapes of our variables for the given fields, from tracing the module (no compile, no arrays)."""
    model = model_lib.SlowFast(num_classes=num_classes, **fields)
    alpha = fields["alpha"]
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jax.numpy.zeros((1, alpha, 32, 32, 3)), train=False))
    leaves = jax.tree_util.tree_flatten_with_path(shapes)[0]
    return {"/".join(k.key for k in path[1:]): tuple(x.shape) for path, x in leaves}


def slowfast_from_torch(
    state_dict: Mapping[str, Any],
    depth: int = 50,
    alpha: int = 4,
    beta_inv: int = 8,
    fusion_kernel: int = 7,
    fusion_channel_ratio: int = 2,
    stage_depths: Sequence[int] = (),
    width: int = 64,
    num_classes: int | None = None,
    rng: jax.Array | None = None,
) -> dict[str, dict]:
    """PyTorchVideo/PySlowFast SlowFast state dict -> `{'params', 'batch_stats'}` (float32 NumPy) for
    `SlowFast(depth=..., alpha=..., ...)` with the same fields.

    Values may be NumPy arrays or torch tensors; the key family is auto-detected (`detect_format`). With
    `num_classes` other than the checkpoint's, the classifier is re-initialised (N(0, 0.01) kernel from `rng`,
    zero bias) and the rest kept. ValueError lists missing and unexpected keys, or names the first shape mismatch.
    """
    key_format = detect_format(state_dict)
    depths = model_lib.stage_depths(depth, stage_depths)
    what = _fields_text(depth, alpha, beta_inv, fusion_kernel, depths, width)
    sd = {k: v for k, v in torch_io.unwrap(state_dict).items() if not k.endswith("num_batches_tracked")}
    modules = list(_module_names(depths, key_format))
    expected = [f"{prefix}.{theirs}" for _, prefix, kind in modules for theirs in _suffixes(kind).values()]
    torch_io.check_keys(f"{what} {key_format} state dict", expected, sd)
    params: dict = {}
    stats: dict = {}
    flat: dict[str, tuple[int, ...]] = {}
    for path, prefix, kind in modules:
        for ours, theirs in _suffixes(kind).items():
            w = torch_io.to_numpy(sd[f"{prefix}.{theirs}"]).astype(np.float32)
            if ours == "kernel":
                w = torch_io.conv3d_from_torch(w) if kind == "conv" else torch_io.linear_from_torch(w)
            tree = stats if ours in ("mean", "var") else params
            for name in path:
                tree = tree.setdefault(name, {})
            tree[ours] = w
            flat["/".join((*path, ours))] = w.shape
    ckpt_classes = params["head_proj"]["kernel"].shape[1]
    fields = dict(
        depth=depth,
        alpha=alpha,
        beta_inv=beta_inv,
        fusion_kernel=fusion_kernel,
        fusion_channel_ratio=fusion_channel_ratio,
        stage_depths=tuple(stage_depths),
        width=width,
    )
    want = _expected_shapes(ckpt_classes, fields)
    differing = sorted(k for k in want if want[k] != flat.get(k))
    if differing:
        raise ValueError(
            f"{key_format} state dict does not fit {what}: {len(differing)} entries differ in shape "
            "(model vs checkpoint), the first " + ", ".join(f"{k}: {want[k]} vs {flat.get(k)}" for k in differing[:5])
        )
    torch_io.resize_head(params, "head_proj", num_classes, rng, "SlowFast")
    return {"params": params, "batch_stats": stats}


def slowfast_to_torch(
    variables: Mapping[str, Any], key_format: str = "pytorchvideo", as_torch: bool = True
) -> dict[str, Any]:
    """`SlowFast` variables -> a state dict with PyTorchVideo (default) or PySlowFast names, in PyTorch layouts.

    The stage depths are read from the variables. `as_torch=True` gives torch tensors (needs torch), loadable
    with `load_state_dict(..., strict=True)`; False gives NumPy arrays. Inverse of `slowfast_from_torch`.
    """
    if key_format not in KEY_FORMATS:
        raise ValueError(f"key_format={key_format!r}; expected one of {KEY_FORMATS}")
    params, stats = variables["params"], variables["batch_stats"]
    depths = tuple(sum(1 for k in params if k.startswith(f"slow_res{s}_block")) for s in range(2, 6))
    if min(depths) < 1:
        raise ValueError(f"variables have stage depths {depths}; expected a SlowFast's (blocks in every stage)")
    out: dict[str, Any] = {}
    for path, prefix, kind in _module_names(depths, key_format):
        p, s = params, stats
        for name in path:
            p, s = p[name], s.get(name, {}) if kind == "bn" else s
        if kind == "bn":
            for ours, theirs in _BN_SUFFIX.items():
                out[f"{prefix}.{theirs}"] = np.asarray(s[ours] if ours in ("mean", "var") else p[ours], np.float32)
            out[f"{prefix}.num_batches_tracked"] = np.zeros((), np.int64)
            continue
        w = np.asarray(p["kernel"], np.float32)
        out[f"{prefix}.weight"] = torch_io.conv3d_to_torch(w) if kind == "conv" else torch_io.linear_to_torch(w)
        if kind == "linear":
            out[f"{prefix}.bias"] = np.asarray(p["bias"], np.float32)
    return torch_io.tensors(out) if as_torch else out


def key_format(**_fields: Any) -> str:
    """The key family `to_torch` writes: PyTorchVideo's (what `create_slowfast` loads)."""
    return "pytorchvideo"


def from_torch(state_dict: Mapping[str, Any], *, dropout_rate: float = 0.5, **fields: Any) -> dict[str, dict]:
    """The registry's converter entry: `slowfast_from_torch` for a `SlowFast(**fields)` model."""
    del dropout_rate  # no weights
    return slowfast_from_torch(state_dict, **fields)


def to_torch(variables: Mapping[str, Any], **fields: Any) -> dict[str, np.ndarray]:
    """The registry's converter entry: `slowfast_to_torch` with PyTorchVideo names, as NumPy."""
    return slowfast_to_torch(variables, key_format=key_format(**fields), as_torch=False)
