"""X3D's architecture against PyTorchVideo's module and the published facts; BN/dropout/dtype behaviour; errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from pytorchvideo_x3d import random_x3d

from vmp_jax import convert
from vmp_jax.models import X3D, stage_depths
from vmp_jax.models.x3d import round_width

# Tiny inputs here: compile time dominates, and numerics are compared only within this module.
pytestmark = pytest.mark.usefixtures("fast_compile")


def _shapes(tree):
    return jax.tree.map(lambda a: tuple(a.shape), tree)


def _abstract_variables(model, clip_shape=(1, 1, 32, 32, 3)):
    return jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(clip_shape), train=False))


def _random_variables(model, clip_shape, seed=0):
    """Random weights and BN statistics from NumPy: compiling `model.init`'s RNG costs ~15 s on this CPU."""
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = jax.tree_util.keystr(path[-1:])
        if "var" in name or "scale" in name:
            return rng.uniform(0.5, 1.5, leaf.shape).astype(np.float32)
        if "kernel" in name:
            return (rng.normal(size=leaf.shape) / np.sqrt(np.prod(leaf.shape[:-1]))).astype(np.float32)
        return (0.1 * rng.normal(size=leaf.shape)).astype(np.float32)

    return jax.tree_util.tree_map_with_path(fill, _abstract_variables(model, clip_shape))


@pytest.mark.parametrize("variant", ["xxs", "xs", "s"])
def test_parameters_match_pytorchvideo_module(variant):
    net = random_x3d(variant, 4, 64)
    ours = _abstract_variables(X3D(variant, num_classes=400))
    converted = convert.x3d_from_torch(net.state_dict(), variant=variant)
    assert _shapes(ours) == _shapes(converted)
    n_ours = sum(np.prod(s) for s in jax.tree.leaves(_shapes(ours["params"]), is_leaf=lambda x: isinstance(x, tuple)))
    assert n_ours == sum(p.numel() for p in net.parameters())  # 3,794,274 for XS/S with 400 classes


def test_published_architecture_facts():
    assert stage_depths("xs") == stage_depths("s") == stage_depths("m") == (3, 5, 11, 7)
    assert stage_depths("l") == (5, 10, 25, 15)
    assert stage_depths("xxs") == (1, 1, 1, 1)  # create_x3d(depth_factor=0.2): XS with one block per stage
    # SE widths: 1/16 of the inner width rounded to a multiple of 8, at least 8 (432/16 = 27 -> 24 < 0.9*27 -> 32).
    assert [round_width(int(2.25 * w), 0.0625) for w in (24, 48, 96, 192)] == [8, 8, 16, 32]
    params = _abstract_variables(X3D("s", num_classes=400))["params"]
    assert params["stem_conv_xy"]["kernel"].shape == (1, 3, 3, 3, 24)
    assert params["stem_conv_t"]["kernel"].shape == (5, 1, 1, 24)  # depthwise temporal conv
    for s, (width, depth, se) in enumerate(zip((24, 48, 96, 192), (3, 5, 11, 7), (8, 8, 16, 32)), start=1):
        inner = int(2.25 * width)
        assert f"stage{s}_block{depth}" not in params and f"stage{s}_block{depth - 1}" in params
        for b in range(depth):
            block = params[f"stage{s}_block{b}"]
            assert block["conv_b"]["kernel"].shape == (3, 3, 3, inner)
            assert block["conv_c"]["kernel"].shape == (inner, width)
            assert ("se" in block) == (b % 2 == 0)
            if b % 2 == 0:
                assert block["se"]["fc1"]["kernel"].shape == (inner, se)
            assert ("branch1_conv" in block) == (b == 0)
            # PyTorchVideo: BN on the shortcut only where widths change, i.e. not in stage 1.
            assert ("branch1_norm" in block) == (b == 0 and s > 1)
    assert params["head_pre_conv"]["kernel"].shape == (192, 432)
    assert params["head_post_conv"]["kernel"].shape == (432, 2048)
    assert params["head_proj"]["kernel"].shape == (2048, 400)


def test_shortcut_bn_switch_and_large_variant():
    params = _abstract_variables(X3D("l", num_classes=10, shortcut_bn_always=True))["params"]
    assert "branch1_norm" in params["stage1_block0"]
    assert sum(k.startswith("stage3_block") for k in params) == 25


def test_train_mode_updates_bn_with_pytorch_momentum_and_uses_dropout():
    model = X3D("xs", num_classes=5, dropout_rate=0.5)
    clips = jnp.asarray(np.random.default_rng(0).normal(size=(2, 2, 32, 48, 3)), jnp.float32)
    variables = _random_variables(model, clips.shape)
    variables["batch_stats"] = jax.tree.map(np.zeros_like, variables["batch_stats"])  # PyTorch/Flax initial state

    @jax.jit
    def train_apply(variables, rng):
        return model.apply(
            variables,
            clips,
            train=True,
            mutable=["batch_stats", "intermediates"],
            rngs={"dropout": rng},
            capture_intermediates=lambda mdl, _: mdl.name == "stem_conv_t",
        )

    logits_a, state = train_apply(variables, jax.random.key(1))
    logits_b, _ = train_apply(variables, jax.random.key(2))
    assert logits_a.shape == (2, 5) and logits_a.dtype == jnp.float32
    assert not np.allclose(logits_a, logits_b)  # dropout active in training
    pre_bn = state["intermediates"]["stem_conv_t"]["__call__"][0]
    # running = 0.9 * running + 0.1 * batch statistic (PyTorch momentum 0.1); running mean starts at 0.
    np.testing.assert_allclose(
        state["batch_stats"]["stem_norm"]["mean"], 0.1 * pre_bn.mean(axis=(0, 1, 2, 3)), rtol=1e-4, atol=1e-6
    )
    evaluate = jax.jit(lambda v: model.apply(v, clips, train=False))
    np.testing.assert_array_equal(evaluate(variables), evaluate(variables))  # eval is deterministic


def test_bn_statistics_synced_over_axis_name():
    """With bn_axis_name, per-device BN statistics equal those of the whole batch (what shard_map training needs)."""
    clips = jnp.asarray(np.random.default_rng(1).normal(size=(4, 1, 32, 32, 3)), jnp.float32)
    model = X3D("xs", num_classes=3, dropout_rate=0.0)
    synced = X3D("xs", num_classes=3, dropout_rate=0.0, bn_axis_name="data")
    variables = _random_variables(model, clips.shape, seed=1)
    _, whole = jax.jit(lambda v: model.apply(v, clips, train=True, mutable=["batch_stats"]))(variables)
    split = jax.jit(
        jax.vmap(lambda x: synced.apply(variables, x, train=True, mutable=["batch_stats"])[1], axis_name="data")
    )(clips.reshape(2, 2, *clips.shape[1:]))
    np.testing.assert_allclose(
        split["batch_stats"]["stem_norm"]["var"][0], whole["batch_stats"]["stem_norm"]["var"], rtol=1e-5
    )
    # Deeper layers accumulate summation-order differences; unsynced statistics would differ by O(1) here.
    jax.tree.map(lambda a, b: np.testing.assert_allclose(b[0], a, rtol=1e-2, atol=2e-3), whole, split)


def test_bfloat16_compute_keeps_float32_params():
    clips = jnp.asarray(np.random.default_rng(2).normal(size=(1, 2, 32, 32, 3)), jnp.float32)
    net = random_x3d("xs", 2, 32, num_classes=4, seed=4)
    variables = convert.x3d_from_torch(net.state_dict(), variant="xs")
    f32 = jax.jit(lambda v: X3D("xs", num_classes=4).apply(v, clips, train=False))(variables)
    bf16_model = X3D("xs", num_classes=4, dtype=jnp.bfloat16)
    init = jax.eval_shape(lambda: bf16_model.init(jax.random.key(0), clips, train=False))
    assert {a.dtype for a in jax.tree.leaves(init)} == {jnp.dtype(jnp.float32)}
    bf16 = jax.jit(lambda v: bf16_model.apply(v, clips, train=False))(variables)
    assert bf16.dtype == jnp.float32
    np.testing.assert_allclose(bf16, f32, atol=0.05 * float(np.abs(f32).max()))


def test_errors_name_the_value():
    with pytest.raises(ValueError, match="variant='xxl'"):
        _abstract_variables(X3D("xxl"))
    with pytest.raises(ValueError, match=r"clips have shape \(1, 2, 32, 32, 4\)"):
        _abstract_variables(X3D("xs"), (1, 2, 32, 32, 4))
    with pytest.raises(ValueError, match=r"spatial size \(16, 32\).*H, W >= 32"):
        _abstract_variables(X3D("xs"), (1, 2, 16, 32, 3))
