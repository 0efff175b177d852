"""Shared PyTorch checkpoint I/O: files in (torch formats and safetensors without torch), wrappers off, layouts."""

import sys

import numpy as np
import pytest
from pytorchvideo_x3d import random_x3d

from vmp_jax import convert
from vmp_jax.convert import torch_io


def _arrays(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "blocks.0.weight": rng.normal(size=(4, 3)).astype(np.float32),
        "blocks.0.bias": np.arange(4, dtype=np.float32),
    }


@pytest.mark.parametrize(
    "wrapped",
    [
        lambda sd: sd,
        lambda sd: {"model_state": sd, "epoch": 3},
        lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}, "optimizer": {}},
        lambda sd: {"model": {f"model.{k}": v for k, v in sd.items()}},
    ],
)
def test_unwrap_takes_off_containers_and_prefixes(wrapped):
    sd = _arrays()
    got = torch_io.unwrap(wrapped(sd))
    assert sorted(got) == sorted(sd)
    for k in sd:
        np.testing.assert_array_equal(got[k], sd[k])


def test_a_prefix_only_some_keys_have_stays():
    sd = {"model.a": np.zeros(1), "b": np.ones(1)}
    assert sorted(torch_io.unwrap(sd)) == ["b", "model.a"]


def test_safetensors_are_read_without_torch(tmp_path, monkeypatch):
    from safetensors.numpy import save_file

    net = random_x3d("xs", 4, 64, seed=3)
    arrays = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    path = tmp_path / "x3d_xs.safetensors"
    save_file(arrays, str(path))
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails
    loaded = convert.load_torch_checkpoint(path)
    assert all(isinstance(v, np.ndarray) for v in loaded.values())
    variables = convert.x3d_from_torch(loaded, variant="xs")
    np.testing.assert_array_equal(variables["params"]["head_proj"]["bias"], arrays["blocks.5.proj.bias"])


@pytest.mark.parametrize("name", ["damaged.safetensors", "damaged.pth"])
def test_a_damaged_file_names_itself(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"\x00\x01 not a checkpoint")
    with pytest.raises(ValueError, match=rf"{name}: not a readable"):
        convert.load_torch_checkpoint(path)


def test_layouts_round_trip():
    rng = np.random.default_rng(1)
    conv = rng.normal(size=(8, 3, 2, 5, 5))
    assert torch_io.conv3d_from_torch(conv).shape == (2, 5, 5, 3, 8)
    np.testing.assert_array_equal(torch_io.conv3d_to_torch(torch_io.conv3d_from_torch(conv)), conv)
    linear = rng.normal(size=(7, 4))
    np.testing.assert_array_equal(torch_io.linear_from_torch(linear), linear.T)
    np.testing.assert_array_equal(torch_io.linear_to_torch(linear.T), linear)
    pointwise = linear.reshape(7, 4, 1, 1, 1)
    np.testing.assert_array_equal(torch_io.linear_from_torch(pointwise), linear.T)
    np.testing.assert_array_equal(torch_io.linear_to_torch(linear.T, torch_ndim=5), pointwise)


def test_check_keys_lists_missing_and_unexpected():
    torch_io.check_keys("net", ["a", "b"], {"b", "a"})
    with pytest.raises(ValueError, match=r"net does not match: missing keys \['b'\], unexpected keys \['c', 'd'\]"):
        torch_io.check_keys("net", ["a", "b"], {"a", "d", "c"})
