"""PyTorch X3D checkpoints in and out: PyTorchVideo and PySlowFast key names <-> `vmp_jax.models.X3D` variables.

PyTorch tensors are `(O, I, T, H, W)` for convs and `(O, I)` for linears; ours are channels-last `(T, H, W, I, O)`,
`(I, O)` for 1x1x1 convs and dense layers, and `(kt, kh, kw, C)` for depthwise kernels. BN: weight/bias ->
params scale/bias, running_mean/var -> batch_stats mean/var; `num_batches_tracked` is ignored on the way in and
written as 0 on the way out.

The converter of the 'x3d' backbone (`from_torch`, `to_torch`, `key_format`, `KEY_FORMATS`; see
`vmp_jax.models.registry`). Two checkpoint families: PyTorchVideo (`blocks.0.conv.conv_t.weight`, ... — note it
calls the stem's 1x3x3 spatial conv `conv_t` and the 5x1x1 temporal one `conv_xy`) and PySlowFast
(`s1.pathway0_stem.conv_xy.weight`, `s2.pathway0_res0.branch2.a.weight`, ...). PySlowFast has a BN on the
stage-1 block-0 shortcut that PyTorchVideo lacks; build `X3D(shortcut_bn_always=True)` for such checkpoints
(`detect_format` says which).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import jax
import numpy as np

from vmp_jax.convert import torch_io
from vmp_jax.models.x3d import STAGE_WIDTHS, stage_depths

FORMATS = ("pytorchvideo", "pyslowfast")
KEY_FORMATS = FORMATS  # the converter interface of vmp_jax.models.registry
_BN_SUFFIX = {"scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}


def _module_names(
    variant: str, key_format: str, shortcut_bn_always: bool
) -> Iterator[tuple[tuple[str, ...], str, str]]:
    """Yields (our module path, torch module prefix, kind) for every module with weights."""
    pv = key_format == "pytorchvideo"
    yield ("stem_conv_xy",), ("blocks.0.conv.conv_t" if pv else "s1.pathway0_stem.conv_xy"), "conv"
    yield ("stem_conv_t",), ("blocks.0.conv.conv_xy" if pv else "s1.pathway0_stem.conv"), "depthwise"
    yield ("stem_norm",), ("blocks.0.norm" if pv else "s1.pathway0_stem.bn"), "bn"
    dim_in = STAGE_WIDTHS[0]
    for s, (width, depth) in enumerate(zip(STAGE_WIDTHS, stage_depths(variant))):
        for b in range(depth):
            ours = f"stage{s + 1}_block{b}"
            if pv:
                t, t2 = f"blocks.{s + 1}.res_blocks.{b}", f"blocks.{s + 1}.res_blocks.{b}.branch2"
                names = {
                    "branch1_conv": f"{t}.branch1_conv",
                    "branch1_norm": f"{t}.branch1_norm",
                    "conv_a": f"{t2}.conv_a",
                    "norm_a": f"{t2}.norm_a",
                    "conv_b": f"{t2}.conv_b",
                    "norm_b": f"{t2}.norm_b.0",
                    "fc1": f"{t2}.norm_b.1.block.0",
                    "fc2": f"{t2}.norm_b.1.block.2",
                    "conv_c": f"{t2}.conv_c",
                    "norm_c": f"{t2}.norm_c",
                }
            else:
                t, t2 = f"s{s + 2}.pathway0_res{b}", f"s{s + 2}.pathway0_res{b}.branch2"
                names = {
                    "branch1_conv": f"{t}.branch1",
                    "branch1_norm": f"{t}.branch1_bn",
                    "conv_a": f"{t2}.a",
                    "norm_a": f"{t2}.a_bn",
                    "conv_b": f"{t2}.b",
                    "norm_b": f"{t2}.b_bn",
                    "fc1": f"{t2}.se.fc1",
                    "fc2": f"{t2}.se.fc2",
                    "conv_c": f"{t2}.c",
                    "norm_c": f"{t2}.c_bn",
                }
            block_in = dim_in if b == 0 else width
            if b == 0:  # the first block of every stage has stride 2, hence a projection shortcut
                yield (ours, "branch1_conv"), names["branch1_conv"], "pointwise"
                if block_in != width or shortcut_bn_always:
                    yield (ours, "branch1_norm"), names["branch1_norm"], "bn"
            yield (ours, "conv_a"), names["conv_a"], "pointwise"
            yield (ours, "norm_a"), names["norm_a"], "bn"
            yield (ours, "conv_b"), names["conv_b"], "depthwise"
            yield (ours, "norm_b"), names["norm_b"], "bn"
            if b % 2 == 0:
                yield (ours, "se", "fc1"), names["fc1"], "dense"
                yield (ours, "se", "fc2"), names["fc2"], "dense"
            yield (ours, "conv_c"), names["conv_c"], "pointwise"
            yield (ours, "norm_c"), names["norm_c"], "bn"
        dim_in = width
    yield ("head_pre_conv",), ("blocks.5.pool.pre_conv" if pv else "head.conv_5"), "pointwise"
    yield ("head_pre_norm",), ("blocks.5.pool.pre_norm" if pv else "head.conv_5_bn"), "bn"
    yield ("head_post_conv",), ("blocks.5.pool.post_conv" if pv else "head.lin_5"), "linear_nobias"
    yield ("head_proj",), ("blocks.5.proj" if pv else "head.projection"), "dense"


def detect_format(state_dict: Mapping[str, Any]) -> tuple[str, bool]:
    """(key format, shortcut_bn_always) of a PyTorchVideo or PySlowFast X3D state dict (possibly in `model_state`)."""
    sd = torch_io.unwrap(state_dict)
    if "blocks.0.conv.conv_t.weight" in sd:
        return "pytorchvideo", "blocks.1.res_blocks.0.branch1_norm.weight" in sd
    if "s1.pathway0_stem.conv_xy.weight" in sd:
        return "pyslowfast", "s2.pathway0_res0.branch1_bn.weight" in sd
    raise ValueError(
        "state dict has neither 'blocks.0.conv.conv_t.weight' (PyTorchVideo) nor "
        f"'s1.pathway0_stem.conv_xy.weight' (PySlowFast); first keys: {sorted(sd)[:5]}"
    )


def _from_torch_layout(w: np.ndarray, kind: str) -> np.ndarray:
    if kind == "conv":
        return torch_io.conv3d_from_torch(w)
    if kind == "depthwise":  # (C, 1, kt, kh, kw) -> (kt, kh, kw, C)
        return w[:, 0].transpose(1, 2, 3, 0)
    return torch_io.linear_from_torch(w)  # pointwise convs, SE fcs, head lin_5 / post_conv, the classifier


def _to_torch_layout(w: np.ndarray, kind: str, torch_ndim: int) -> np.ndarray:
    if kind == "conv":
        return torch_io.conv3d_to_torch(w)
    if kind == "depthwise":
        return w.transpose(3, 0, 1, 2)[:, None]
    return torch_io.linear_to_torch(w, torch_ndim)


def _torch_kernel_ndim(kind: str, prefix: str) -> int:
    # SE fcs and the head's lin_5/post_conv are Conv3d 1x1x1 in both families; the classifier is nn.Linear.
    return 2 if kind == "dense" and prefix.endswith(("proj", "projection")) else 5


def _suffixes(kind: str) -> dict[str, str]:
    """Our variable name -> PyTorch's, for one module of `kind`."""
    if kind == "bn":
        return _BN_SUFFIX
    return (
        {"kernel": "weight"}
        if kind in ("conv", "depthwise", "pointwise", "linear_nobias")
        else {"kernel": "weight", "bias": "bias"}
    )


def _set(tree: dict, path: tuple[str, ...], value: np.ndarray) -> None:
    for p in path[:-1]:
        tree = tree.setdefault(p, {})
    tree[path[-1]] = value


def x3d_from_torch(
    state_dict: Mapping[str, Any], variant: str = "s", num_classes: int | None = None, rng: jax.Array | None = None
) -> dict[str, dict]:
    """PyTorchVideo/PySlowFast X3D state dict -> `{'params', 'batch_stats'}` for `X3D(variant, ...)` (float32 NumPy).

    Values may be NumPy arrays or torch tensors; the format is auto-detected (see `detect_format`, which also says
    whether the model needs `shortcut_bn_always=True`). With `num_classes` different from the checkpoint's, the
    classifier layer is re-initialised (N(0, 0.01) kernel from `rng`, zero bias) and the rest is kept.
    Raises ValueError listing missing and unexpected keys, or naming a shape mismatch.
    """
    key_format, shortcut_bn = detect_format(state_dict)
    sd = {k: v for k, v in torch_io.unwrap(state_dict).items() if not k.endswith("num_batches_tracked")}
    modules = list(_module_names(variant, key_format, shortcut_bn))
    expected = [f"{prefix}.{theirs}" for _, prefix, kind in modules for theirs in _suffixes(kind).values()]
    torch_io.check_keys(f"X3D-{variant.upper()} {key_format} state dict", expected, sd)
    params: dict = {}
    stats: dict = {}
    for path, prefix, kind in modules:
        for ours, theirs in _suffixes(kind).items():
            w = torch_io.to_numpy(sd[f"{prefix}.{theirs}"]).astype(np.float32)
            if ours == "kernel":
                w = _from_torch_layout(w, kind)
            _set(stats if ours in ("mean", "var") else params, (*path, ours), w)
    _check_shapes(params, variant)
    torch_io.resize_head(params, "head_proj", num_classes, rng, "X3D")
    return {"params": params, "batch_stats": stats}


def _check_shapes(params: dict, variant: str) -> None:
    """Channel widths must be the X3D ones (catches e.g. a different width factor with the same key names)."""
    got = params["stage4_block0"]["conv_c"]["kernel"].shape
    want = (int(2.25 * STAGE_WIDTHS[-1]), STAGE_WIDTHS[-1])
    if got != want:
        raise ValueError(f"stage4_block0.conv_c kernel has shape {got}; X3D-{variant.upper()} expects {want}")


def x3d_to_torch(
    variables: Mapping[str, Any], key_format: str = "pytorchvideo", as_torch: bool = True
) -> dict[str, Any]:
    """`X3D` variables -> a state dict with PyTorchVideo (default) or PySlowFast names, in PyTorch layouts.

    The variant and shortcut-BN switch are read from the variables. `as_torch=True` gives torch tensors (needs torch)
    loadable with `load_state_dict(..., strict=True)`; False gives NumPy arrays. Inverse of `x3d_from_torch`.
    """
    if key_format not in FORMATS:
        raise ValueError(f"key_format={key_format!r}; expected one of {FORMATS}")
    params, stats = variables["params"], variables["batch_stats"]
    depths = tuple(sum(1 for k in params if k.startswith(f"stage{s}_block")) for s in range(1, 5))
    by_depths = {stage_depths(v): v for v in ("xxs", "s", "l")}  # xs, s, m share their depths
    variant = by_depths.get(depths)
    if variant is None:
        raise ValueError(f"variables have stage depths {depths}; expected one of {sorted(by_depths)}")
    shortcut_bn = "branch1_norm" in params["stage1_block0"]
    if shortcut_bn and key_format == "pytorchvideo":
        raise ValueError(
            "variables have a BN on the stage-1 block-0 shortcut (shortcut_bn_always=True), which "
            "PyTorchVideo's X3D lacks; export with key_format='pyslowfast'"
        )
    out: dict[str, Any] = {}
    for path, prefix, kind in _module_names(variant, key_format, shortcut_bn):
        p = params
        for name in path:
            p = p[name]
        if kind == "bn":
            s = stats
            for name in path:
                s = s[name]
            for ours, theirs in _BN_SUFFIX.items():
                out[f"{prefix}.{theirs}"] = np.asarray(s[ours] if ours in ("mean", "var") else p[ours], np.float32)
            out[f"{prefix}.num_batches_tracked"] = np.zeros((), np.int64)
            continue
        out[f"{prefix}.weight"] = _to_torch_layout(
            np.asarray(p["kernel"], np.float32), kind, _torch_kernel_ndim(kind, prefix)
        )
        if "bias" in p:
            out[f"{prefix}.bias"] = np.asarray(p["bias"], np.float32)
    return torch_io.tensors(out) if as_torch else out


def key_format(*, shortcut_bn_always: bool = False, **_other_fields: Any) -> str:
    """The key family `to_torch` writes: PySlowFast names for a model with a BN on every projection shortcut."""
    return "pyslowfast" if shortcut_bn_always else "pytorchvideo"


def from_torch(
    state_dict: Mapping[str, Any], *, variant: str = "s", shortcut_bn_always: bool = False, **_other_fields: Any
) -> dict[str, dict]:
    """The registry's converter entry: `x3d_from_torch` for an `X3D(variant, shortcut_bn_always=...)` model; a
    checkpoint of the other shortcut-BN family raises ValueError naming the config key to change."""
    key_format, checkpoint_bn = detect_format(state_dict)
    if checkpoint_bn != shortcut_bn_always:
        raise ValueError(
            f"X3D {key_format} checkpoint does not fit the model: checkpoint has shortcut_bn_always="
            f"{checkpoint_bn}, model {shortcut_bn_always} (config.model.x3d.shortcut_bn_always)"
        )
    return x3d_from_torch(state_dict, variant=variant)


def to_torch(variables: Mapping[str, Any], **fields: Any) -> dict[str, np.ndarray]:
    """The registry's converter entry: `x3d_to_torch` in the key family of `key_format(**fields)`, as NumPy."""
    return x3d_to_torch(variables, key_format=key_format(**fields), as_torch=False)
