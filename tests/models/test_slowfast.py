"""SlowFast: the conv forms against XLA's 3-D conv, the pathway split against PySlowFast's, parity with
PyTorchVideo's create_slowfast in both key formats, checkpoint round trips and errors.

Parity runs the published 8x8 R50 at its native 32 frames but 64x64 pixels instead of 224x224 (the head pools
globally, so any size >= 32 is the same network): 224² costs ~12x the compute and ~1 min more of CI per format.
"""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from pytorchvideo_slowfast import random_slowfast, slowfast_key, to_pyslowfast, torch_logits

from vmp_jax import convert
from vmp_jax.convert import slowfast as converter
from vmp_jax.models import SlowFast
from vmp_jax.models.slowfast import Conv, slow_indices, validate

TINY = {"width": 16, "stage_depths": (1, 1, 1, 1)}


def _apply(**fields):
    model = SlowFast(**fields)
    return jax.jit(lambda v, x: model.apply(v, x, train=False))


def _clips(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


@pytest.mark.parametrize(
    "kernel, strides",
    [
        ((3, 1, 1), (1, 1, 1)),
        ((7, 1, 1), (4, 1, 1)),
        ((5, 1, 1), (8, 1, 1)),
        ((1, 1, 1), (1, 2, 2)),
        ((1, 3, 3), (1, 2, 2)),
        ((5, 7, 7), (1, 2, 2)),
    ],
)
def test_conv_matches_xla_3d_conv_in_values_and_gradients(kernel, strides):
    x = jnp.asarray(_clips((2, 8, 9, 10, 3)))
    conv = Conv(4, kernel, strides)
    variables = conv.init(jax.random.key(0), x)
    w = variables["params"]["kernel"]

    def reference(x, w):
        return lax.conv_general_dilated(
            x, w, strides, [(k // 2, k // 2) for k in kernel], dimension_numbers=("NDHWC", "DHWIO", "NDHWC")
        )

    ours = lambda x, w: conv.apply({"params": {"kernel": w}}, x)
    np.testing.assert_allclose(ours(x, w), reference(x, w), rtol=1e-5, atol=1e-5)
    cot = jnp.asarray(_clips(reference(x, w).shape, seed=1))
    g_ours = jax.vjp(ours, x, w)[1](cot)
    g_ref = jax.vjp(reference, x, w)[1](cot)
    for a, b in zip(g_ours, g_ref):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_slow_pathway_frames_are_pyslowfasts():
    torch = pytest.importorskip("torch")
    for t, alpha in [(32, 4), (32, 8), (64, 8), (16, 2), (12, 4), (8, 8), (30, 3)]:
        want = torch.linspace(0, t - 1, t // alpha).long().tolist()
        assert slow_indices(t, alpha) == want, (t, alpha)


def test_parity_with_pytorchvideo_r50_8x8_both_key_formats():
    """Same weights -> same eval logits as PyTorchVideo's 8x8 R50, within 2e-3 of the logit scale (32x64²)."""
    net = random_slowfast(depth=50, alpha=4, fusion_kernel=7, seed=3)
    clips = _clips((1, 32, 64, 64, 3))
    ref = torch_logits(net, clips, alpha=4)
    apply = _apply(depth=50, alpha=4, fusion_kernel=7)
    for state_dict, key_format in ((net.state_dict(), "pytorchvideo"), (to_pyslowfast(net.state_dict()), "pyslowfast")):
        assert converter.detect_format(state_dict) == key_format
        variables = convert.slowfast_from_torch(state_dict, depth=50, alpha=4)
        ours = np.asarray(apply(variables, jnp.asarray(clips)))
        scale = np.abs(ref).max()
        assert scale > 0.1  # the check below is relative; make sure the logits are not trivially small
        err = np.abs(ours - ref).max() / scale
        assert err < 2e-3, f"{key_format}: max error {err:.2e} of the logit scale"


def test_parity_4x16_fusion_both_key_formats():
    """The 4x16 setting (alpha 8, 5x1x1 fusion) on the small network: 4 slow frames fused from 32 fast ones."""
    net = random_slowfast(alpha=8, fusion_kernel=5, seed=4, **TINY)
    clips = _clips((2, 32, 32, 32, 3), seed=1)
    ref = torch_logits(net, clips, alpha=8)
    apply = _apply(alpha=8, fusion_kernel=5, **TINY)
    for state_dict in (net.state_dict(), to_pyslowfast(net.state_dict())):
        variables = convert.slowfast_from_torch(state_dict, alpha=8, fusion_kernel=5, **TINY)
        ours = np.asarray(apply(variables, jnp.asarray(clips)))
        assert np.abs(ref).max() > 0.1
        assert np.abs(ours - ref).max() < 2e-3 * np.abs(ref).max()


def test_r101_round_trip_loads_strictly_into_pytorchvideo():
    """8x8 R101 (PyTorchVideo's hub model: 5x1x1 fusion): our variables have every one of its tensors, and go back
    to PyTorchVideo names that load with strict=True, value for value."""
    import torch  # pylint: disable=import-outside-toplevel

    net = random_slowfast(depth=101, fusion_kernel=5, seed=5)
    state_dict = net.state_dict()
    variables = convert.slowfast_from_torch(
        {k: v.numpy() for k, v in state_dict.items()}, depth=101, fusion_kernel=5
    )  # NumPy input too
    assert len([k for k in variables["params"] if k.startswith("slow_res4_")]) == 23
    back = convert.slowfast_to_torch(variables)
    fresh = random_slowfast(depth=101, fusion_kernel=5, seed=6)
    fresh.load_state_dict(back, strict=True)
    for k, v in state_dict.items():
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(fresh.state_dict()[k], v), k


def test_round_trip_pyslowfast_names():
    net = random_slowfast(seed=7, **TINY)
    state_dict = to_pyslowfast(net.state_dict())["model_state"]
    variables = convert.slowfast_from_torch(state_dict, **TINY)
    back = convert.slowfast_to_torch(variables, key_format="pyslowfast", as_torch=False)
    assert set(back) == set(state_dict)
    for k, v in state_dict.items():
        np.testing.assert_array_equal(back[k], v.numpy(), err_msg=k)


def test_pyslowfast_key_helper_matches_known_names():
    # Names as they appear in PySlowFast's SLOWFAST_8x8_R50 checkpoint.
    assert slowfast_key("blocks.0.multipathway_blocks.1.conv.weight") == "s1.pathway1_stem.conv.weight"
    assert slowfast_key("blocks.2.multipathway_fusion.conv_fast_to_slow.weight") == "s3_fuse.conv_f2s.weight"
    assert slowfast_key("blocks.0.multipathway_fusion.norm.running_mean") == "s1_fuse.bn.running_mean"
    assert (
        slowfast_key("blocks.3.multipathway_blocks.0.res_blocks.5.branch2.norm_b.weight")
        == "s4.pathway0_res5.branch2.b_bn.weight"
    )
    assert (
        slowfast_key("blocks.1.multipathway_blocks.1.res_blocks.0.branch1_norm.bias")
        == "s2.pathway1_res0.branch1_bn.bias"
    )


def test_fine_tune_to_other_num_classes_reinitialises_head_only(caplog):
    net = random_slowfast(seed=8, **TINY)
    full = convert.slowfast_from_torch(net.state_dict(), **TINY)
    with caplog.at_level(logging.INFO):
        tuned = convert.slowfast_from_torch(net.state_dict(), num_classes=99, rng=jax.random.key(1), **TINY)
    assert "400 classes, model 99: head_proj re-initialised" in caplog.text
    hidden = 32 * 16 + 32 * 16 // 8  # res5 widths, slow + fast: 32 x width (2048 + 256 = 2304 at width 64)
    assert tuned["params"]["head_proj"]["kernel"].shape == (hidden, 99)
    np.testing.assert_array_equal(tuned["params"]["head_proj"]["bias"], np.zeros(99))
    assert 0.005 < tuned["params"]["head_proj"]["kernel"].std() < 0.02
    full["params"].pop("head_proj"), tuned["params"].pop("head_proj")
    jax.tree.map(np.testing.assert_array_equal, full, tuned)


def test_checkpoint_file_with_model_state_and_module_prefix(tmp_path):
    import torch  # pylint: disable=import-outside-toplevel

    net = random_slowfast(seed=9, **TINY)
    path = tmp_path / "SLOWFAST_8x8_R50.pyth"
    # PySlowFast's files: names under model_state, 'module.' when saved from DistributedDataParallel.
    sd = to_pyslowfast(net.state_dict())["model_state"]
    torch.save({"model_state": {f"module.{k}": v for k, v in sd.items()}, "epoch": 196}, path)
    variables = convert.slowfast_from_torch(convert.load_torch_checkpoint(path), **TINY)
    np.testing.assert_array_equal(variables["params"]["head_proj"]["bias"], net.blocks[6].proj.bias.detach().numpy())


def test_mismatched_checkpoints_are_named():
    sd = dict(random_slowfast(seed=10, **TINY).state_dict())
    key = "blocks.2.multipathway_blocks.1.res_blocks.0.branch2.conv_b.weight"
    del sd[key]
    sd["blocks.2.extra.weight"] = np.zeros(3)
    with pytest.raises(ValueError, match=rf"missing keys \['{key}'\], unexpected keys \['blocks\.2\.extra\.weight'\]"):
        convert.slowfast_from_torch(sd, **TINY)
    sd = random_slowfast(seed=10, **TINY).state_dict()
    # An R50-depth checkpoint read as R101 misses R101's extra res4 blocks.
    with pytest.raises(ValueError, match=r"SlowFast R101 .* state dict does not match: missing keys \["):
        convert.slowfast_from_torch(sd, depth=101, width=16)
    # Same keys, other shapes: the 7x1x1 fusion read as 5x1x1.
    with pytest.raises(ValueError, match=r"fuse0_conv/kernel: \(5, 1, 1, 2, 4\) vs \(7, 1, 1, 2, 4\)"):
        convert.slowfast_from_torch(sd, fusion_kernel=5, **TINY)
    with pytest.raises(ValueError, match="neither 'blocks.0.multipathway_blocks.0.conv.weight'"):
        convert.slowfast_from_torch({"conv1.weight": np.zeros(1)})


def test_validate_names_the_keys():
    with pytest.raises(ValueError, match=r"num_frames=30 with config.model.slowfast.alpha=4"):
        validate({"alpha": 4}, (30, 64, 64))
    with pytest.raises(ValueError, match=r"config.model.slowfast.depth=34"):
        validate({"depth": 34}, (32, 64, 64))
    with pytest.raises(ValueError, match=r"config.model.slowfast.width=12 is not a multiple of .*beta_inv=8"):
        validate({"width": 12}, (32, 64, 64))
    with pytest.raises(ValueError, match=r"frames of 16x64"):
        validate({}, (32, 16, 64))
    validate({"alpha": 8, "depth": 101}, (32, 224, 224))


@pytest.mark.parametrize(
    "name, arg, num_classes",
    [("slowfast_finegym", None, 99), ("slowfast_finegym", "gym288", 288), ("slowfast_mpii_cooking2", None, 67)],
)
def test_recipes_are_the_8x8_r50_on_the_x3d_schedule(name, arg, num_classes):
    import importlib  # pylint: disable=import-outside-toplevel

    from configs import x3d_finegym  # pylint: disable=import-outside-toplevel
    from vmp_jax.models import factory  # pylint: disable=import-outside-toplevel

    module = importlib.import_module(f"configs.{name}")
    config = module.get_config() if arg is None else module.get_config(arg)
    x3d = x3d_finegym.get_config("m,gym99")
    assert config.model.num_classes == num_classes and config.model.backbone == "slowfast"
    assert (config.num_frames, config.data.sampling_rate, config.data.crop_size) == (32, 2, 224)
    assert dict(config.model.slowfast) == {**dict(x3d.model.slowfast), "depth": 50, "alpha": 4, "fusion_kernel": 7}
    assert (config.optimizer, config.schedule, config.num_epochs) == (x3d.optimizer, x3d.schedule, x3d.num_epochs)
    factory.validate_backbone(config.model, config.num_frames, (224, 224))


def test_max_pool_matches_pytorch_values_and_gradient_away_from_ties():
    torch = pytest.importorskip("torch")
    from vmp_jax.models.slowfast import max_pool_3x3_s2  # pylint: disable=import-outside-toplevel

    x = _clips((2, 3, 9, 12, 4))  # continuous values: no ties
    cot = _clips((2, 3, 5, 6, 4), seed=1)
    ours, vjp = jax.vjp(max_pool_3x3_s2, jnp.asarray(x))
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 4, 1, 2, 3))).requires_grad_(True)
    theirs = torch.nn.functional.max_pool3d(xt, (1, 3, 3), (1, 2, 2), (0, 1, 1))
    theirs.backward(torch.from_numpy(np.ascontiguousarray(cot.transpose(0, 4, 1, 2, 3))))
    np.testing.assert_array_equal(ours, theirs.detach().numpy().transpose(0, 2, 3, 4, 1))
    np.testing.assert_allclose(vjp(jnp.asarray(cot))[0], xt.grad.numpy().transpose(0, 2, 3, 4, 1), atol=1e-6)
