"""model.dtype='bfloat16' end to end: the motion prompts, the largest tensor of the model's input side, are emitted
in bfloat16 and never exist as float32; luma and attention stay float32."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vmp_jax.models import VideoClassifier
from vmp_jax.motion_prompt import VideoMotionPrompt, motion_prompts

B, T, H, W = 2, 3, 16, 16


def all_jaxprs(jaxpr):
    """A jaxpr and every jaxpr inside its equations."""
    yield jaxpr
    for eqn in jaxpr.eqns:
        for param in eqn.params.values():
            for sub in param if isinstance(param, (tuple, list)) else (param,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    yield from all_jaxprs(inner)


def all_avals(jaxpr):
    return [v.aval for j in all_jaxprs(jaxpr) for eqn in j.eqns for v in eqn.outvars]


def narrowed_products(jaxpr, shape):
    """Products of `shape` computed in float32 and then converted to a narrower dtype (a float32 tensor written
    only to be rounded)."""
    found = []
    for j in all_jaxprs(jaxpr):
        producer = {id(v): eqn for eqn in j.eqns for v in eqn.outvars}
        for eqn in j.eqns:
            src = eqn.invars[0] if eqn.invars else None
            if (
                eqn.primitive.name == "convert_element_type"
                and src is not None
                and hasattr(src, "aval")
                and src.aval.shape == shape
                and src.aval.dtype == jnp.float32
                and eqn.outvars[0].aval.dtype == jnp.bfloat16
                and getattr(producer.get(id(src)), "primitive", None) is not None
                and producer[id(src)].primitive.name == "mul"
            ):
                found.append(eqn)
    return found


def frames():
    return jnp.asarray(np.random.default_rng(0).normal(size=(B, T + 1, H, W, 3)), jnp.float32)


def test_bf16_prompts_match_the_float32_layer_rounded():
    x = frames()
    params = {"m": jnp.float32(0.3), "n": jnp.float32(-0.2)}
    f32 = motion_prompts(x, params)
    bf16 = motion_prompts(x, params, dtype=jnp.bfloat16)
    assert bf16.prompts.dtype == jnp.bfloat16 and bf16.attention.dtype == jnp.float32
    np.testing.assert_array_equal(bf16.attention, f32.attention)
    np.testing.assert_allclose(
        np.asarray(bf16.prompts, np.float32), f32.prompts, rtol=3 * 2**-8, atol=1e-6
    )  # three bf16 roundings


def test_layer_emits_its_dtype():
    layer = VideoMotionPrompt(dtype=jnp.bfloat16)
    variables = layer.init(jax.random.key(0), frames())
    prompts, variation = layer.apply(variables, frames())
    assert prompts.dtype == jnp.bfloat16 and variation.dtype == jnp.float32


def test_bf16_train_step_never_rounds_a_float32_prompt():
    model = VideoClassifier(num_classes=4, backbone="tiny", dtype=jnp.bfloat16)
    x, labels = frames(), jnp.arange(B) % 4
    variables = model.init(jax.random.key(0), x, train=False)

    def loss(params):
        (logits, variation), _ = model.apply({**variables, "params": params}, x, train=True, mutable=["batch_stats"])
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean() + variation

    jaxpr = jax.make_jaxpr(jax.value_and_grad(loss))(variables["params"]).jaxpr
    assert narrowed_products(jaxpr, (B, T, H, W, 3)) == []
    assert any(a.shape == (B, T, H, W, 3) and a.dtype == jnp.bfloat16 for a in all_avals(jaxpr) if hasattr(a, "shape"))
    # float32 luma/attention maps are there: the precision-sensitive part stays float32
    assert any(a.shape == (B, T, H, W) and a.dtype == jnp.float32 for a in all_avals(jaxpr) if hasattr(a, "shape"))
