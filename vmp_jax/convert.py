"""PyTorch X3D checkpoints in and out: PyTorchVideo and PySlowFast key names <-> `vmp_jax.models.X3D` variables.

PyTorch tensors are `(O, I, T, H, W)` for convs and `(O, I)` for linears; ours are channels-last `(T, H, W, I, O)`,
`(I, O)` for 1x1x1 convs and dense layers, and `(kt, kh, kw, C)` for depthwise kernels. BN: weight/bias ->
params scale/bias, running_mean/var -> batch_stats mean/var; `num_batches_tracked` is ignored on the way in and
written as 0 on the way out.

Two checkpoint families: PyTorchVideo (`blocks.0.conv.conv_t.weight`, ... — note it calls the stem's 1x3x3 spatial
conv `conv_t` and the 5x1x1 temporal one `conv_xy`) and PySlowFast (`s1.pathway0_stem.conv_xy.weight`,
`s2.pathway0_res0.branch2.a.weight`, ...). PySlowFast has a BN on the stage-1 block-0 shortcut that PyTorchVideo
lacks; build `X3D(shortcut_bn_always=True)` for such checkpoints (`detect_format` says which).
"""
from __future__ import annotations

import os
from typing import Any, Iterator, Mapping

import jax
import numpy as np
from absl import logging

from vmp_jax.models.x3d import STAGE_WIDTHS, stage_depths

FORMATS = ("pytorchvideo", "pyslowfast")
_BN_SUFFIX = {"scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}


def _module_names(variant: str, key_format: str,
                  shortcut_bn_always: bool) -> Iterator[tuple[tuple[str, ...], str, str]]:
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
                names = {"branch1_conv": f"{t}.branch1_conv", "branch1_norm": f"{t}.branch1_norm",
                         "conv_a": f"{t2}.conv_a", "norm_a": f"{t2}.norm_a", "conv_b": f"{t2}.conv_b",
                         "norm_b": f"{t2}.norm_b.0", "fc1": f"{t2}.norm_b.1.block.0", "fc2": f"{t2}.norm_b.1.block.2",
                         "conv_c": f"{t2}.conv_c", "norm_c": f"{t2}.norm_c"}
            else:
                t, t2 = f"s{s + 2}.pathway0_res{b}", f"s{s + 2}.pathway0_res{b}.branch2"
                names = {"branch1_conv": f"{t}.branch1", "branch1_norm": f"{t}.branch1_bn",
                         "conv_a": f"{t2}.a", "norm_a": f"{t2}.a_bn", "conv_b": f"{t2}.b", "norm_b": f"{t2}.b_bn",
                         "fc1": f"{t2}.se.fc1", "fc2": f"{t2}.se.fc2", "conv_c": f"{t2}.c", "norm_c": f"{t2}.c_bn"}
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


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # torch.Tensor, without importing torch
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _unwrap(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"state_dict is a {type(state_dict).__name__}; expected a mapping of names to arrays")
    if "model_state" in state_dict and isinstance(state_dict["model_state"], Mapping):
        state_dict = state_dict["model_state"]
    state_dict = dict(state_dict)
    if state_dict and all(k.startswith("module.") for k in state_dict):  # saved from DistributedDataParallel
        state_dict = {k[len("module."):]: v for k, v in state_dict.items()}
    return state_dict


def detect_format(state_dict: Mapping[str, Any]) -> tuple[str, bool]:
    """(key format, shortcut_bn_always) of a PyTorchVideo or PySlowFast X3D state dict (possibly in `model_state`)."""
    sd = _unwrap(state_dict)
    if "blocks.0.conv.conv_t.weight" in sd:
        return "pytorchvideo", "blocks.1.res_blocks.0.branch1_norm.weight" in sd
    if "s1.pathway0_stem.conv_xy.weight" in sd:
        return "pyslowfast", "s2.pathway0_res0.branch1_bn.weight" in sd
    raise ValueError("state dict has neither 'blocks.0.conv.conv_t.weight' (PyTorchVideo) nor "
                     f"'s1.pathway0_stem.conv_xy.weight' (PySlowFast); first keys: {sorted(sd)[:5]}")


def _from_torch_layout(w: np.ndarray, kind: str) -> np.ndarray:
    if kind == "conv":  # (O, I, T, H, W) -> (T, H, W, I, O)
        return w.transpose(2, 3, 4, 1, 0)
    if kind == "depthwise":  # (C, 1, kt, kh, kw) -> (kt, kh, kw, C)
        return w[:, 0].transpose(1, 2, 3, 0)
    if kind == "pointwise" or (kind in ("dense", "linear_nobias") and w.ndim == 5):  # (O, I, 1, 1, 1) -> (I, O)
        return w.reshape(w.shape[:2]).T
    return w.T  # Linear (O, I) -> (I, O)


def _to_torch_layout(w: np.ndarray, kind: str, torch_ndim: int) -> np.ndarray:
    if kind == "conv":
        return w.transpose(4, 3, 0, 1, 2)
    if kind == "depthwise":
        return w.transpose(3, 0, 1, 2)[:, None]
    w = w.T
    return w.reshape(*w.shape, 1, 1, 1) if torch_ndim == 5 else w


def _torch_kernel_ndim(kind: str, prefix: str) -> int:
    # SE fcs and the head's lin_5/post_conv are Conv3d 1x1x1 in both families; the classifier is nn.Linear.
    return 2 if kind == "dense" and prefix.endswith(("proj", "projection")) else 5


def _set(tree: dict, path: tuple[str, ...], value: np.ndarray) -> None:
    for p in path[:-1]:
        tree = tree.setdefault(p, {})
    tree[path[-1]] = value


def x3d_from_torch(state_dict: Mapping[str, Any], variant: str = "s", num_classes: int | None = None,
                   rng: jax.Array | None = None) -> dict[str, dict]:
    """PyTorchVideo/PySlowFast X3D state dict -> `{'params', 'batch_stats'}` for `X3D(variant, ...)` (float32 NumPy).

    Values may be NumPy arrays or torch tensors; the format is auto-detected (see `detect_format`, which also says
    whether the model needs `shortcut_bn_always=True`). With `num_classes` different from the checkpoint's, the
    classifier layer is re-initialised (N(0, 0.01) kernel from `rng`, zero bias) and the rest is kept.
    Raises ValueError listing missing and unexpected keys, or naming a shape mismatch.
    """
    key_format, shortcut_bn = detect_format(state_dict)
    sd = {k: v for k, v in _unwrap(state_dict).items() if not k.endswith("num_batches_tracked")}
    params: dict = {}
    stats: dict = {}
    used = set()
    missing = []
    for path, prefix, kind in _module_names(variant, key_format, shortcut_bn):
        if kind == "bn":
            for ours, theirs in _BN_SUFFIX.items():
                key = f"{prefix}.{theirs}"
                if key not in sd:
                    missing.append(key)
                    continue
                used.add(key)
                _set(stats if ours in ("mean", "var") else params, (*path, ours), _to_numpy(sd[key]).astype(np.float32))
            continue
        suffixes = {"kernel": "weight"} if kind in ("conv", "depthwise", "pointwise", "linear_nobias") else \
                {"kernel": "weight", "bias": "bias"}
        for ours, theirs in suffixes.items():
            key = f"{prefix}.{theirs}"
            if key not in sd:
                missing.append(key)
                continue
            used.add(key)
            w = _to_numpy(sd[key]).astype(np.float32)
            _set(params, (*path, ours), _from_torch_layout(w, kind) if ours == "kernel" else w)
    unexpected = sorted(set(sd) - used)
    if missing or unexpected:
        raise ValueError(f"X3D-{variant.upper()} {key_format} state dict does not match: missing keys {missing}, "
                         f"unexpected keys {unexpected}")
    _check_shapes(params, variant)
    ckpt_classes = params["head_proj"]["kernel"].shape[1]
    if num_classes is not None and num_classes != ckpt_classes:
        if num_classes < 1:
            raise ValueError(f"num_classes={num_classes}; expected a positive int")
        rng = jax.random.key(0) if rng is None else rng
        hidden = params["head_proj"]["kernel"].shape[0]
        params["head_proj"] = {
            "kernel": 0.01 * np.asarray(jax.random.normal(rng, (hidden, num_classes)), np.float32),
            "bias": np.zeros((num_classes,), np.float32)}
        logging.warning("X3D checkpoint has %d classes, model %d: head_proj re-initialised, backbone kept.",
                     ckpt_classes, num_classes)
    return {"params": params, "batch_stats": stats}


def _check_shapes(params: dict, variant: str) -> None:
    """Channel widths must be the X3D ones (catches e.g. a different width factor with the same key names)."""
    got = params["stage4_block0"]["conv_c"]["kernel"].shape
    want = (int(2.25 * STAGE_WIDTHS[-1]), STAGE_WIDTHS[-1])
    if got != want:
        raise ValueError(f"stage4_block0.conv_c kernel has shape {got}; X3D-{variant.upper()} expects {want}")


def x3d_to_torch(variables: Mapping[str, Any], key_format: str = "pytorchvideo",
                 as_torch: bool = True) -> dict[str, Any]:
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
        raise ValueError("variables have a BN on the stage-1 block-0 shortcut (shortcut_bn_always=True), which "
                         "PyTorchVideo's X3D lacks; export with key_format='pyslowfast'")
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
        out[f"{prefix}.weight"] = _to_torch_layout(np.asarray(p["kernel"], np.float32), kind,
                                                   _torch_kernel_ndim(kind, prefix))
        if "bias" in p:
            out[f"{prefix}.bias"] = np.asarray(p["bias"], np.float32)
    return _tensors(out) if as_torch else out


def classifier_to_torch(variables: Mapping[str, Any], key_format: str = "pytorchvideo",
                        as_torch: bool = True) -> dict[str, Any]:
    """`VideoClassifier` variables with an X3D backbone -> one PyTorch state dict: the backbone's keys as in
    `x3d_to_torch`, plus `vmp.<name>` for every parameter of the motion prompt layer when the model has one
    (`vmp.m`, `vmp.n` for the paper's pn='sigmoid'; `vmp.log_gamma` or `vmp.log_eta` for the other PNs; shape ()
    or (H, W) with parametrization='per_pixel').

    Load the backbone with `create_x3d(...).load_state_dict({k: v for k, v in sd.items() if not
    k.startswith('vmp.')}, strict=True)`; the VMP tensors are for a PyTorch port of the layer.
    """
    params, stats = variables["params"], variables.get("batch_stats", {})
    if "backbone" not in params or "stage1_block0" not in params["backbone"]:
        raise ValueError(f"variables have params {sorted(params)} (backbone: {sorted(params.get('backbone', {}))[:3]}"
                         "...); expected a VideoClassifier with an X3D backbone")
    out = x3d_to_torch({"params": params["backbone"], "batch_stats": stats.get("backbone", {})},
                       key_format=key_format, as_torch=False)
    for name, value in params.get("vmp", {}).items():
        out[f"vmp.{name}"] = np.asarray(value, np.float32)
    return _tensors(out) if as_torch else out


def _tensors(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    torch = _import_torch()
    return {k: torch.from_numpy(np.array(v, order="C")) for k, v in arrays.items()}  # a writable copy


def _import_torch():
    try:
        import torch  # pylint: disable=import-outside-toplevel
    except ImportError as e:
        raise ImportError("reading or writing PyTorch checkpoints needs torch: `pip install 'vmp_jax[torch]'` "
                          "(or `pip install torch`)") from e
    return torch


def load_torch_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Reads a `.pyth`/`.pt`/`.pth` file with torch (CPU) and returns its state dict (unwrapping `model_state`)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist; expected a .pyth/.pt/.pth file")
    torch = _import_torch()
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    return _unwrap(ckpt)


def load_pretrained_backbone(variables: Mapping[str, Any], source: str | os.PathLike | Mapping[str, Any],
                             variant: str, rng: jax.Array | None = None) -> dict[str, Any]:
    """Classifier variables with `params/batch_stats['backbone']` replaced by an X3D checkpoint (path or state dict).

    The classifier's own head size is kept (re-initialised from `rng` when the checkpoint's differs); everything
    outside 'backbone' (e.g. the motion prompt's params) is untouched. The classifier must have been built with the
    checkpoint's `shortcut_bn_always` (see `detect_format`); otherwise a ValueError names the switch.
    """
    sd = source if isinstance(source, Mapping) else load_torch_checkpoint(source)
    params = variables["params"]["backbone"]
    num_classes = params["head_proj"]["kernel"].shape[1]
    loaded = x3d_from_torch(sd, variant=variant, num_classes=num_classes, rng=rng)
    shapes = lambda tree: jax.tree.map(lambda a: tuple(a.shape), tree)
    want = shapes({"params": params, "batch_stats": variables["batch_stats"]["backbone"]})
    got = shapes(loaded)
    if want != got:
        _, ckpt_bn = detect_format(sd)
        model_bn = "branch1_norm" in params["stage1_block0"]
        hint = (f" (checkpoint has shortcut_bn_always={ckpt_bn}, model {model_bn})" if ckpt_bn != model_bn else "")
        raise ValueError(f"X3D-{variant.upper()} checkpoint does not fit the classifier's backbone{hint}; "
                         f"differing entries: {_tree_diff(want, got)[:10]}")
    out = {k: dict(v) for k, v in variables.items()}
    out["params"]["backbone"] = loaded["params"]
    out["batch_stats"]["backbone"] = loaded["batch_stats"]
    return out


def _tree_diff(a: Any, b: Any) -> list[str]:
    fa = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_flatten_with_path(a)[0]}
    fb = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_flatten_with_path(b)[0]}
    return sorted(k for k in fa.keys() | fb.keys() if fa.get(k) != fb.get(k))
