"""PyTorch checkpoints in and out: parity with PyTorchVideo's X3D at native sizes, round trips, errors."""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from pytorchvideo_x3d import random_x3d, slowfast_key, to_slowfast, torch_logits

from vmp_jax import convert
from vmp_jax.models import X3D, native_input


def _apply(variant, shortcut_bn_always):
    model = X3D(variant, num_classes=400, shortcut_bn_always=shortcut_bn_always)
    return jax.jit(lambda v, x: model.apply(v, x, train=False))


def _clips(variant, seed=0):
    t, h, w = native_input(variant)
    return np.random.default_rng(seed).normal(size=(1, t, h, w, 3)).astype(np.float32)


@pytest.mark.parametrize("variant", ["xxs", "xs", "s"])
def test_parity_with_pytorchvideo_both_key_formats(variant):
    """Same weights -> same eval logits as PyTorchVideo, within 2e-3 of the logit scale, at the native size."""
    t, h, _ = native_input(variant)
    clips = _clips(variant)
    for slowfast in (False, True):
        # PySlowFast's network is PyTorchVideo's plus a BN on the stage-1 block-0 shortcut.
        net = random_x3d(variant, t, h, seed=3 + slowfast, shortcut_bn=slowfast)
        ref = torch_logits(net, clips)
        sd = to_slowfast(net.state_dict()) if slowfast else net.state_dict()
        assert convert.detect_format(sd) == (("pyslowfast" if slowfast else "pytorchvideo"), slowfast)
        variables = convert.x3d_from_torch(sd, variant=variant)
        ours = np.asarray(_apply(variant, slowfast)(variables, jnp.asarray(clips)))
        scale = np.abs(ref).max()
        assert scale > 0.1  # the check below is relative; make sure the logits are not trivially small
        err = np.abs(ours - ref).max() / scale
        assert err < 2e-3, f"{variant} slowfast={slowfast}: max error {err:.2e} of the logit scale"


@pytest.mark.parametrize("variant", ["xxs", "xs"])
def test_round_trip_pytorchvideo_strict(variant):
    import torch  # pylint: disable=import-outside-toplevel

    net = random_x3d(variant, 4, 64, seed=5)
    sd = net.state_dict()
    variables = convert.x3d_from_torch({k: v.numpy() for k, v in sd.items()}, variant=variant)  # NumPy input too
    back = convert.x3d_to_torch(variables)
    fresh = random_x3d(variant, 4, 64, seed=6)
    fresh.load_state_dict(back, strict=True)
    for k, v in sd.items():
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(fresh.state_dict()[k], v), k


def test_round_trip_pyslowfast_names():
    net = random_x3d("xs", 4, 64, seed=7, shortcut_bn=True)
    sd = to_slowfast(net.state_dict())["model_state"]
    variables = convert.x3d_from_torch(sd, variant="xs")
    assert "branch1_norm" in variables["params"]["stage1_block0"]
    back = convert.x3d_to_torch(variables, key_format="pyslowfast", as_torch=False)
    assert set(back) == set(sd)
    for k, v in sd.items():
        np.testing.assert_array_equal(back[k], v.numpy(), err_msg=k)
    with pytest.raises(ValueError, match="key_format='pyslowfast'"):
        convert.x3d_to_torch(variables)  # PyTorchVideo has no module for that BN


def test_fine_tune_to_other_num_classes_reinitialises_head_only(caplog):
    net = random_x3d("xs", 4, 64, seed=8)
    full = convert.x3d_from_torch(net.state_dict(), variant="xs")
    with caplog.at_level(logging.INFO):
        tuned = convert.x3d_from_torch(net.state_dict(), variant="xs", num_classes=7, rng=jax.random.key(1))
    assert "400 classes, model 7: head_proj re-initialised" in caplog.text
    assert tuned["params"]["head_proj"]["kernel"].shape == (2048, 7)
    np.testing.assert_array_equal(tuned["params"]["head_proj"]["bias"], np.zeros(7))
    assert 0.005 < tuned["params"]["head_proj"]["kernel"].std() < 0.02
    for name in ("head_proj",):
        full["params"].pop(name), tuned["params"].pop(name)
    jax.tree.map(np.testing.assert_array_equal, full, tuned)


def test_checkpoint_file_with_model_state(tmp_path):
    import torch  # pylint: disable=import-outside-toplevel

    net = random_x3d("xs", 4, 64, seed=9)
    path = tmp_path / "X3D_XS.pyth"
    torch.save({"model_state": net.state_dict(), "epoch": 300}, path)
    sd = convert.load_torch_checkpoint(path)
    variables = convert.x3d_from_torch(sd, variant="xs")
    np.testing.assert_array_equal(variables["params"]["head_proj"]["bias"], net.blocks[5].proj.bias.detach().numpy())
    with pytest.raises(FileNotFoundError, match="missing.pyth"):
        convert.load_torch_checkpoint(tmp_path / "missing.pyth")


def test_missing_torch_gives_install_hint(monkeypatch, tmp_path):
    path = tmp_path / "x.pt"
    path.write_bytes(b"")
    monkeypatch.setitem(__import__("sys").modules, "torch", None)
    with pytest.raises(ImportError, match=r"pip install 'vmp_jax\[torch\]'"):
        convert.load_torch_checkpoint(path)


def test_mismatched_keys_are_listed():
    sd = dict(random_x3d("xs", 4, 64, seed=10).state_dict())
    del sd["blocks.3.res_blocks.4.branch2.conv_b.weight"]
    sd["blocks.3.res_blocks.4.branch2.extra.weight"] = np.zeros(3)
    with pytest.raises(
        ValueError,
        match=r"missing keys \['blocks\.3\.res_blocks\.4\.branch2\.conv_b\.weight'\], "
        r"unexpected keys \['blocks\.3\.res_blocks\.4\.branch2\.extra\.weight'\]",
    ):
        convert.x3d_from_torch(sd, variant="xs")
    # An S checkpoint read as L misses L's extra blocks.
    with pytest.raises(
        ValueError,
        match=r"X3D-L pytorchvideo state dict does not match: missing keys \['blocks\.1\."
        r"res_blocks\.3\.",
    ):
        convert.x3d_from_torch(random_x3d("s", 4, 64, seed=10).state_dict(), variant="l")
    with pytest.raises(ValueError, match="neither 'blocks.0.conv.conv_t.weight'"):
        convert.x3d_from_torch({"conv1.weight": np.zeros(1)}, variant="s")
    with pytest.raises(ValueError, match="variant='xl'"):
        convert.x3d_from_torch(random_x3d("xs", 4, 64).state_dict(), variant="xl")


def test_slowfast_key_helper_matches_known_names():
    # Names as they appear in PySlowFast's X3D checkpoints.
    assert slowfast_key("blocks.0.conv.conv_xy.weight") == "s1.pathway0_stem.conv.weight"
    assert slowfast_key("blocks.2.res_blocks.0.branch2.norm_b.1.block.2.bias") == "s3.pathway0_res0.branch2.se.fc2.bias"
    assert (
        slowfast_key("blocks.4.res_blocks.6.branch2.norm_c.running_var") == "s5.pathway0_res6.branch2.c_bn.running_var"
    )
