"""VideoClassifier: composition of the real motion prompt layer and a registered backbone; loading checkpoints."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from pytorchvideo_x3d import random_x3d

from vmp_jax import convert
from vmp_jax.models import BACKBONES, X3D, VideoClassifier, register_backbone, registered_backbone
from vmp_jax.motion_prompt import VideoMotionPrompt


class TinyBackbone(nn.Module):
    """A backbone defined outside the package: mean over T, H, W, then a linear layer."""

    num_classes: int
    dtype: object = jnp.float32
    bn_axis_name: str | None = None
    scale: float = 1.0

    @nn.compact
    def __call__(self, clips, train):
        return nn.Dense(self.num_classes)(self.scale * clips.mean(axis=(1, 2, 3)))


@pytest.fixture(autouse=True)
def tiny_test_backbone():
    """TinyBackbone registered as 'tiny_test_backbone' for each test, and removed again after it."""
    with registered_backbone("tiny_test_backbone", TinyBackbone) as entry:
        yield entry
    assert "tiny_test_backbone" not in BACKBONES


def _frames(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def test_vmp_then_backbone_equals_the_two_applied_by_hand():
    frames = _frames((2, 5, 8, 8, 3))
    clf = VideoClassifier(
        num_classes=4,
        backbone="tiny_test_backbone",
        backbone_kwargs=(("scale", 3.0),),
        vmp_kwargs={"luma": "reference"},
    )
    variables = clf.init(jax.random.key(0), frames, train=False)
    assert set(variables["params"]) == {"vmp", "backbone"}
    assert variables["params"]["vmp"]["m"].shape == ()
    logits, variation = clf.apply(variables, frames, train=False)
    vmp_vars = {"params": variables["params"]["vmp"]}
    prompts, want_variation = VideoMotionPrompt(luma="reference").apply(vmp_vars, frames)
    want = TinyBackbone(4, scale=3.0).apply({"params": variables["params"]["backbone"]}, prompts, train=False)
    assert prompts.shape == (2, 4, 8, 8, 3)
    np.testing.assert_allclose(logits, want, rtol=1e-6)
    np.testing.assert_allclose(variation, want_variation, rtol=1e-6)
    assert float(variation) > 0.0


def test_without_vmp_frames_go_to_backbone_unchanged():
    frames = _frames((2, 4, 8, 8, 3), seed=1)
    clf = VideoClassifier(num_classes=3, backbone="tiny_test_backbone", use_vmp=False)
    variables = clf.init(jax.random.key(0), frames, train=False)
    assert set(variables["params"]) == {"backbone"}
    logits, variation = clf.apply(variables, frames, train=False)
    want = TinyBackbone(3).apply({"params": variables["params"]["backbone"]}, frames, train=False)
    np.testing.assert_allclose(logits, want, rtol=1e-6)
    assert variation.dtype == jnp.float32 and float(variation) == 0.0


def test_x3d_backbone_kwargs_reach_the_backbone():
    frames = _frames((2, 2, 32, 32, 3), seed=2)
    shapes = {}
    for variant in ("xs", "l"):
        clf = VideoClassifier(
            num_classes=5, backbone="x3d", backbone_kwargs=(("variant", variant), ("dropout_rate", 0.2))
        )
        abstract = jax.eval_shape(lambda: clf.init(jax.random.key(0), frames, train=False))
        shapes[variant] = jax.tree.map(lambda a: a.shape, abstract["params"]["backbone"])
    direct = jax.eval_shape(lambda: X3D("l", num_classes=5).init(jax.random.key(0), frames[:, 1:], train=False))
    assert shapes["l"] == jax.tree.map(lambda a: a.shape, direct["params"])
    assert sum(k.startswith("stage3_block") for k in shapes["xs"]) == 11
    assert BACKBONES["x3d"] is X3D


def test_registry_errors():
    with pytest.raises(ValueError, match="'tiny_test_backbone' is already registered to TinyBackbone"):
        register_backbone("tiny_test_backbone")(X3D)
    clf = VideoClassifier(num_classes=2, backbone="no_such_backbone")
    with pytest.raises(ValueError, match=r"backbone='no_such_backbone'; expected one of \[.*'x3d'\]"):
        clf.init(jax.random.key(0), _frames((1, 2, 8, 8, 3)), train=False)


def test_load_pretrained_backbone_keeps_vmp_and_resizes_head():
    frames = _frames((1, 2, 32, 32, 3), seed=3)
    clf = VideoClassifier(num_classes=6, backbone="x3d", backbone_kwargs=(("variant", "xs"),))
    abstract = jax.eval_shape(lambda: clf.init(jax.random.key(0), frames, train=False))
    rng = np.random.default_rng(4)
    variables = jax.tree.map(lambda a: rng.normal(size=a.shape).astype(a.dtype), abstract)
    variables["params"]["vmp"] = {"m": np.float32(0.3), "n": np.float32(-0.2)}
    model_head = variables["params"]["backbone"]["head_proj"]
    sd = random_x3d("xs", 4, 64, seed=11).state_dict()
    loaded = convert.load_pretrained_backbone(variables, sd, "x3d", {"variant": "xs", "dropout_rate": 0.5})
    assert loaded["params"]["vmp"] == {"m": np.float32(0.3), "n": np.float32(-0.2)}
    want = convert.x3d_from_torch(sd, variant="xs")
    # The checkpoint's 400-class head does not fit the 6-class model: the model's own head is kept.
    want["params"]["head_proj"] = model_head
    jax.tree.map(np.testing.assert_array_equal, loaded["params"]["backbone"], want["params"])
    jax.tree.map(np.testing.assert_array_equal, loaded["batch_stats"]["backbone"], want["batch_stats"])
    # A PySlowFast-style checkpoint (BN on every projection shortcut) needs shortcut_bn_always=True.
    sf = random_x3d("xs", 4, 64, seed=12, shortcut_bn=True).state_dict()
    with pytest.raises(ValueError, match="checkpoint has shortcut_bn_always=True, model False"):
        convert.load_pretrained_backbone(variables, sf, "x3d", {"variant": "xs"})
    # A checkpoint of another variant names the entries that do not fit.
    with pytest.raises(ValueError, match=r"x3d checkpoint does not fit .*: 3\d\d differing entries .*stage1_block1"):
        convert.load_pretrained_backbone(
            variables, random_x3d("xxs", 4, 64, seed=13).state_dict(), "x3d", {"variant": "xxs"}
        )
