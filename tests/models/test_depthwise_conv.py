"""The depthwise conv op against XLA's grouped conv (an independent formulation): values and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vmp_jax.ops import depthwise_conv as dw
from vmp_jax.ops import depthwise_conv3d as _depthwise_conv3d

# One compilation per case instead of eager dispatch of every shifted slice.
depthwise_conv3d = jax.jit(_depthwise_conv3d, static_argnums=(2,), static_argnames=("impl",))

CASES = [  # (x shape, kernel taps, strides): X3D's 3x3x3 with and without stride, the stem's 5x1x1, odd sizes
    ((2, 5, 9, 8, 6), (3, 3, 3), (1, 2, 2)),
    ((2, 4, 7, 7, 5), (3, 3, 3), (1, 1, 1)),
    ((1, 6, 4, 5, 3), (5, 1, 1), (1, 1, 1)),
    ((1, 3, 6, 6, 4), (3, 3, 3), (2, 2, 1)),
]


def _inputs(shape, taps, seed=0):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=shape), jnp.float32)
    k = jnp.asarray(rng.normal(size=(*taps, shape[-1])), jnp.float32)
    return x, k


def _torch_out_size(n, k, s):
    return (n + 2 * (k // 2) - k) // s + 1


@pytest.mark.parametrize("shape,taps,strides", CASES)
def test_shifted_equals_grouped_conv(shape, taps, strides):
    x, k = _inputs(shape, taps)
    ours = depthwise_conv3d(x, k, strides, impl="shifted")
    ref = depthwise_conv3d(x, k, strides, impl="lax")
    want_shape = (shape[0], *(_torch_out_size(n, kk, s) for n, kk, s in zip(shape[1:4], taps, strides)), shape[-1])
    assert ours.shape == ref.shape == want_shape
    np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=1e-5)


def test_hand_computed_value():
    # One channel, all-ones 3x3x3 kernel: an interior output is the sum of its 27 neighbours, a corner sums 8.
    x = jnp.arange(4 * 4 * 4, dtype=jnp.float32).reshape(1, 4, 4, 4, 1)
    out = depthwise_conv3d(x, jnp.ones((3, 3, 3, 1)), impl="shifted")
    xn = np.asarray(x)[0, :, :, :, 0]
    assert out[0, 1, 1, 1, 0] == pytest.approx(xn[0:3, 0:3, 0:3].sum())
    assert out[0, 0, 0, 0, 0] == pytest.approx(xn[0:2, 0:2, 0:2].sum())


@pytest.mark.parametrize("shape,taps,strides", CASES)
def test_gradients_equal_grouped_conv(shape, taps, strides):
    x, k = _inputs(shape, taps, seed=1)

    def grads(impl):
        # A non-linear loss so the incoming cotangent is not constant.
        loss = lambda x, k: jnp.sum(jnp.sin(depthwise_conv3d(x, k, strides, impl=impl)))
        return jax.jit(jax.grad(loss, argnums=(0, 1)))(x, k)

    (dx, dk), (dx_ref, dk_ref) = grads("shifted"), grads("lax")
    np.testing.assert_allclose(dx, dx_ref, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(dk, dk_ref, atol=1e-3, rtol=1e-4)


def test_gradients_under_jit_and_vmap():
    x, k = _inputs((2, 3, 6, 6, 4), (3, 3, 3), seed=2)
    f = lambda impl: jax.jit(
        jax.vmap(
            jax.grad(lambda x, k: jnp.sum(depthwise_conv3d(x[None], k, (1, 2, 2), impl=impl) ** 2), argnums=1),
            (0, None),
        )
    )
    np.testing.assert_allclose(f("shifted")(x, k), f("lax")(x, k), atol=1e-3, rtol=1e-4)


def test_bfloat16_accumulates_in_float32():
    x, k = _inputs((1, 4, 8, 8, 16), (3, 3, 3), seed=3)
    xb, kb = x.astype(jnp.bfloat16), k.astype(jnp.bfloat16)
    out = depthwise_conv3d(xb, kb, impl="shifted")
    ref = depthwise_conv3d(xb.astype(jnp.float32), kb.astype(jnp.float32), impl="lax")
    assert out.dtype == jnp.bfloat16
    # A single bf16 rounding of the result (2^-8 relative), not 27 of them.
    np.testing.assert_allclose(out.astype(jnp.float32), ref, rtol=2**-8, atol=2**-8 * float(jnp.abs(ref).max()))


def test_default_impl_per_backend_and_env(monkeypatch):
    monkeypatch.delenv("VMP_DEPTHWISE_IMPL", raising=False)
    assert dw.default_impl("cpu") == "shifted"
    assert dw.default_impl("gpu") == "lax"
    assert dw.default_impl("tpu") == "lax"
    monkeypatch.setenv("VMP_DEPTHWISE_IMPL", "shifted")
    assert dw.default_impl("gpu") == "shifted"
    monkeypatch.setenv("VMP_DEPTHWISE_IMPL", "cudnn")
    with pytest.raises(ValueError, match="VMP_DEPTHWISE_IMPL='cudnn'"):
        dw.default_impl("gpu")


def test_errors_name_the_value():
    x, k = _inputs((1, 3, 5, 5, 4), (3, 3, 3))
    depthwise_conv3d = _depthwise_conv3d
    with pytest.raises(ValueError, match=r"kernel has shape \(3, 3, 3, 5\).*C = 4"):
        depthwise_conv3d(x, jnp.ones((3, 3, 3, 5)))
    with pytest.raises(ValueError, match=r"x has shape \(3, 5, 5, 4\)"):
        depthwise_conv3d(x[0], k)
    with pytest.raises(ValueError, match=r"strides=\(1, 0, 1\)"):
        depthwise_conv3d(x, k, (1, 0, 1))
    with pytest.raises(ValueError, match="impl='fast'"):
        depthwise_conv3d(x, k, impl="fast")


def test_auto_form_is_chosen_per_platform_when_lowered(monkeypatch):
    """An artifact exported on a CPU carries the vendor grouped conv for GPU/TPU and the shifted form for CPU."""
    monkeypatch.delenv("VMP_DEPTHWISE_IMPL", raising=False)
    x = jax.ShapeDtypeStruct((2, 4, 8, 8, 6), jnp.float32)
    k = jax.ShapeDtypeStruct((3, 3, 3, 6), jnp.float32)

    def lowered(platforms):
        return jax.export.export(jax.jit(depthwise_conv3d), platforms=platforms)(x, k)

    assert "feature_group_count = 6" not in lowered(("cpu",)).mlir_module()
    assert "feature_group_count = 6" in lowered(("cuda",)).mlir_module()
    assert "feature_group_count = 6" in lowered(("tpu",)).mlir_module()
    both = lowered(("cpu", "cuda"))
    rng = np.random.default_rng(0)
    xs = rng.normal(size=x.shape).astype(np.float32)
    ks = rng.normal(size=k.shape).astype(np.float32)
    np.testing.assert_allclose(both.call(xs, ks), depthwise_conv3d(xs, ks, impl="lax"), rtol=1e-5, atol=1e-5)
