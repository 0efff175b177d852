"""A VideoClassifier's backbone to and from PyTorch checkpoints, through the backbone's registered converter.

Knows no backbone: `vmp_jax.models.registry` says which converter and which head parameters a backbone has.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from absl import logging

from vmp_jax.convert import torch_io
from vmp_jax.models import registry


def _shapes(tree: Any) -> dict[str, tuple[int, ...]]:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(path): tuple(np.shape(leaf)) for path, leaf in leaves}


def load_pretrained_backbone(
    variables: Mapping[str, Any],
    source: str | os.PathLike | Mapping[str, Any],
    backbone: str,
    fields: Mapping[str, Any],
    new_head: bool = True,
) -> dict[str, Any]:
    """Classifier variables with `params/batch_stats['backbone']` replaced by a PyTorch checkpoint (a path, see
    `torch_io.load_torch_checkpoint`, or a state dict) of the registered `backbone` built with `fields`.

    The classifier's own head is kept where the checkpoint's has another shape (another number of classes): the
    backbone's `head` parameters then keep their values in `variables` (the model's fresh initialisation); with
    `new_head=False` (importing a trained model as it is) that is a ValueError instead.
    A checkpoint of a whole VMP model (the motion prompt's params beside the backbone's, see `split_vmp`) also sets
    `params['vmp']`; everything else outside 'backbone' is untouched. ValueError names the checkpoint's entries that
    do not fit.
    """
    entry = registry.entry(backbone)
    state_dict = source if isinstance(source, Mapping) else torch_io.load_torch_checkpoint(source)
    converter = entry.load_converter()
    state_dict, vmp = split_vmp(converter, state_dict)
    loaded = converter.from_torch(state_dict, **fields)
    loaded = {"params": dict(loaded["params"]), "batch_stats": dict(loaded.get("batch_stats", {}))}
    current = {
        "params": variables["params"]["backbone"],
        "batch_stats": variables.get("batch_stats", {}).get("backbone", {}),
    }
    kept = []
    for collection, tree in loaded.items():
        for name in entry.head:
            if name in tree and _shapes(tree[name]) != _shapes(current[collection].get(name, {})):
                tree[name] = current[collection][name]
                kept.append(f"{collection}/{name}")
    if kept and not new_head:
        raise ValueError(
            f"{backbone} checkpoint's head does not fit the model's ({', '.join(kept)}): another number "
            "of classes than config.model.num_classes / the class names"
        )
    if kept:
        logging.warning(
            "%s checkpoint has another head than the model: %s keep the model's initialisation.",
            backbone,
            ", ".join(kept),
        )
    want, got = _shapes(current), _shapes(loaded)
    if want != got:
        differing = sorted(k for k in want.keys() | got.keys() if want.get(k) != got.get(k))
        raise ValueError(
            f"{backbone} checkpoint does not fit the classifier's backbone {dict(fields)}: "
            f"{len(differing)} differing entries (model vs checkpoint shape), the first "
            + ", ".join(f"{k}: {want.get(k)} vs {got.get(k)}" for k in differing[:10])
        )
    out = {k: dict(v) for k, v in variables.items()}
    out["params"]["backbone"] = loaded["params"]
    if vmp:
        taken = _checkpoint_vmp(variables["params"].get("vmp"), vmp, backbone)
        if taken is not None:
            out["params"]["vmp"] = taken
    if loaded["batch_stats"]:
        out["batch_stats"]["backbone"] = loaded["batch_stats"]
    return out


def classifier_to_torch(
    variables: Mapping[str, Any], backbone: str, fields: Mapping[str, Any], as_torch: bool = True
) -> dict[str, Any]:
    """VideoClassifier variables -> one PyTorch state dict: the backbone's keys as its converter's `to_torch`
    writes them, plus `vmp.<name>` for every parameter of the motion prompt layer when the model has one (`vmp.m`,
    `vmp.n` for the paper's pn='sigmoid'; `vmp.log_gamma` or `vmp.log_eta` for the other PNs; shape () or (H, W)
    with parametrization='per_pixel'). `as_torch=False` gives NumPy arrays (no torch needed).

    Load the backbone part with `load_state_dict({k: v for k, v in sd.items() if not k.startswith('vmp.')},
    strict=True)`; the VMP tensors are for a PyTorch port of the layer.
    """
    params, stats = variables["params"], variables.get("batch_stats", {})
    if "backbone" not in params:
        raise ValueError(f"variables have params {sorted(params)}; expected a VideoClassifier's ('backbone', ...)")
    converter = registry.entry(backbone).load_converter()
    out = converter.to_torch({"params": params["backbone"], "batch_stats": stats.get("backbone", {})}, **fields)
    vmp = {name: np.asarray(value, np.float32) for name, value in params.get("vmp", {}).items()}
    join = getattr(converter, "join_vmp", None)
    if join is not None:  # the backbone's reference keeps the layer's params its own way
        out = join(out, vmp, **fields)
    else:
        out.update({f"vmp.{name}": value for name, value in vmp.items()})
    return torch_io.tensors(out) if as_torch else out


def split_vmp(converter: Any, state_dict: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(backbone state dict, motion prompt params) of a checkpoint: the converter's optional `split_vmp` hook, else
    the `vmp.<name>` keys `classifier_to_torch` writes (none in a backbone-only checkpoint)."""
    split = getattr(converter, "split_vmp", None)
    if split is not None:
        return split(state_dict)
    sd = torch_io.unwrap(state_dict)
    vmp = {k[len("vmp.") :]: torch_io.to_numpy(v) for k, v in sd.items() if k.startswith("vmp.")}
    return {k: v for k, v in sd.items() if not k.startswith("vmp.")}, vmp


def _checkpoint_vmp(current: Mapping[str, Any] | None, vmp: Mapping[str, np.ndarray], backbone: str) -> dict | None:
    """The model's motion prompt params replaced by a checkpoint's (reshaped: the reference stores scalars as (1,))."""
    if current is None:
        logging.warning(
            "%s checkpoint has motion prompt params %s; the model has no motion prompt layer (use_vmp=False): ignored.",
            backbone,
            sorted(vmp),
        )
        return None
    if set(current) != set(vmp):
        raise ValueError(
            f"{backbone} checkpoint has motion prompt params {sorted(vmp)}; the model's layer has "
            f"{sorted(current)} (config.model.vmp.pn)"
        )
    out = {}
    for name, value in vmp.items():
        want = np.shape(current[name])
        if np.size(value) != int(np.prod(want)):
            raise ValueError(
                f"{backbone} checkpoint's motion prompt {name} has shape {np.shape(value)}; the model's "
                f"has {want} (config.model.vmp.parametrization)"
            )
        out[name] = np.asarray(value, np.float32).reshape(want)
    logging.warning("%s checkpoint: motion prompt params %s taken from it.", backbone, ", ".join(sorted(out)))
    return out
