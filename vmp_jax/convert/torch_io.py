"""PyTorch checkpoint I/O shared by every backbone converter: files in, wrappers off, layouts, key checks.

Reads `.pyth`/`.pt`/`.pth`/`.bin` with torch (CPU) and `.safetensors` with the `safetensors` package into NumPy (no
torch needed). Layouts: PyTorch convs are `(O, I, T, H, W)`, linears `(O, I)`; ours are channels-last
`(T, H, W, I, O)` and `(I, O)`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

TORCH_SUFFIXES = (".pyth", ".pt", ".pth", ".bin")
SAFETENSORS_SUFFIX = ".safetensors"
# Containers a training script saves the weights in; the first present is taken, repeatedly (e.g. {'model': {...}}).
WRAPPER_KEYS = ("model_state", "state_dict", "model")
# Prefixes added by DistributedDataParallel / wrapper modules; stripped when every key has them.
KEY_PREFIXES = ("module.", "model.")


def to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # torch.Tensor, without importing torch
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def unwrap(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """The flat name -> tensor mapping inside a saved checkpoint (see WRAPPER_KEYS, KEY_PREFIXES)."""
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"state_dict is a {type(state_dict).__name__}; expected a mapping of names to arrays")
    while True:
        inner = next((state_dict[k] for k in WRAPPER_KEYS if isinstance(state_dict.get(k), Mapping)), None)
        if inner is None:
            break
        state_dict = inner
    state_dict = dict(state_dict)
    for prefix in KEY_PREFIXES:
        if state_dict and all(k.startswith(prefix) for k in state_dict):
            state_dict = {k[len(prefix) :]: v for k, v in state_dict.items()}
    return state_dict


def import_torch():
    try:
        import torch  # pylint: disable=import-outside-toplevel
    except ImportError as e:
        raise ImportError(
            "reading or writing PyTorch checkpoints needs torch: `pip install 'vmp_jax[torch]'` "
            "(or `pip install torch`); .safetensors files are read without it"
        ) from e
    return torch


def load_torch_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The state dict in a `.pyth`/`.pt`/`.pth`/`.bin` (torch) or `.safetensors` (NumPy, no torch) file, unwrapped."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"checkpoint {path!r} does not exist; expected a {'/'.join(TORCH_SUFFIXES + (SAFETENSORS_SUFFIX,))} file"
        )
    if path.endswith(SAFETENSORS_SUFFIX):
        from safetensors.numpy import load_file  # pylint: disable=import-outside-toplevel

        try:
            return unwrap(load_file(path))
        except Exception as e:  # safetensors raises its own SafetensorError for damaged headers
            raise ValueError(f"{path}: not a readable safetensors file ({e})") from e
    torch = import_torch()
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # pickle/zip errors of a damaged or foreign file
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {e})") from e
    return unwrap(checkpoint)


def tensors(arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """NumPy arrays -> torch tensors (writable copies), for `load_state_dict`."""
    torch = import_torch()
    return {k: torch.from_numpy(np.array(v, order="C")) for k, v in arrays.items()}


def conv3d_from_torch(w: np.ndarray) -> np.ndarray:
    """(O, I, T, H, W) -> (T, H, W, I, O)."""
    return w.transpose(2, 3, 4, 1, 0)


def conv3d_to_torch(w: np.ndarray) -> np.ndarray:
    return w.transpose(4, 3, 0, 1, 2)


def linear_from_torch(w: np.ndarray) -> np.ndarray:
    """Linear (O, I) or 1x1x1 conv (O, I, 1, 1, 1) -> (I, O)."""
    return w.reshape(w.shape[:2]).T


def linear_to_torch(w: np.ndarray, torch_ndim: int = 2) -> np.ndarray:
    """(I, O) -> Linear (O, I), or a 1x1x1 conv (O, I, 1, 1, 1) with torch_ndim=5."""
    w = w.T
    return w.reshape(*w.shape, *(1,) * (torch_ndim - 2))


def resize_head(params: dict, name: str, num_classes: int | None, rng: Any, what: str) -> None:
    """Re-initialises the linear classifier `params[name]` ({'kernel' (hidden, K), 'bias' (K,)}) in place for
    `num_classes` when that differs from the checkpoint's K: N(0, 0.01) kernel from `rng` (a jax key; None: key 0),
    zero bias; logged, naming `what` (e.g. 'X3D'). None keeps the checkpoint's head."""
    checkpoint_classes = params[name]["kernel"].shape[1]
    if num_classes is None or num_classes == checkpoint_classes:
        return
    if num_classes < 1:
        raise ValueError(f"num_classes={num_classes}; expected a positive int")
    import jax  # pylint: disable=import-outside-toplevel  (only converters that resize a head need it)
    from absl import logging  # pylint: disable=import-outside-toplevel

    rng = jax.random.key(0) if rng is None else rng
    hidden = params[name]["kernel"].shape[0]
    params[name] = {
        "kernel": 0.01 * np.asarray(jax.random.normal(rng, (hidden, num_classes)), np.float32),
        "bias": np.zeros((num_classes,), np.float32),
    }
    logging.warning(
        "%s checkpoint has %d classes, model %d: %s re-initialised, backbone kept.",
        what,
        checkpoint_classes,
        num_classes,
        name,
    )


def check_keys(what: str, expected: Iterable[str], given: Iterable[str]) -> None:
    """ValueError listing the missing and the unexpected keys when `given` is not exactly `expected`."""
    expected, given = list(expected), set(given)
    missing = [k for k in expected if k not in given]
    unexpected = sorted(given - set(expected))
    if missing or unexpected:
        raise ValueError(f"{what} does not match: missing keys {missing}, unexpected keys {unexpected}")
