"""Optimiser and schedule tests against hand-computed values."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vmp_jax.training import optim

PARAMS = {
    "vmp": {"m": jnp.float32(0.5), "n": jnp.float32(-0.5)},
    "backbone": {"conv": {"kernel": jnp.ones((2, 2))}, "bn": {"scale": jnp.ones(2), "bias": jnp.ones(2)}},
}


def test_step_schedule_matches_the_reference_relative_rates():
    # PySlowFast: lr = base * rel[i] from boundary i; here 25 epochs of 10 steps, boundaries at epochs 11, 14.
    sched = optim.learning_rate_schedule("steps", 0.005, 250, boundaries=(110, 140), relative_rates=(1, 0.1, 0.01))
    for step, want in ((0, 0.005), (109, 0.005), (110, 0.0005), (139, 0.0005), (140, 0.00005), (249, 0.00005)):
        assert float(sched(step)) == pytest.approx(want, rel=1e-6), step


def test_cosine_with_warmup():
    sched = optim.learning_rate_schedule("cosine", 1.0, 110, warmup_steps=10)
    assert float(sched(0)) == 0.0
    assert float(sched(5)) == pytest.approx(0.5)
    assert float(sched(10)) == pytest.approx(1.0)
    assert float(sched(60)) == pytest.approx(0.5 * (1 + np.cos(np.pi * 50 / 100)), abs=1e-6)
    assert float(sched(110)) == pytest.approx(0.0, abs=1e-7)


def test_warmup_into_step_schedule_keeps_boundaries_absolute():
    sched = optim.learning_rate_schedule(
        "steps", 1.0, 100, warmup_steps=10, boundaries=(50,), relative_rates=(1.0, 0.1)
    )
    assert float(sched(10)) == pytest.approx(1.0)
    assert float(sched(49)) == pytest.approx(1.0)
    assert float(sched(50)) == pytest.approx(0.1)


def test_decay_mask_defaults_and_switches():
    mask = optim.decay_mask(PARAMS)
    assert mask["backbone"]["conv"]["kernel"] is True
    assert mask["backbone"]["bn"]["scale"] is False and mask["vmp"]["m"] is False
    mask = optim.decay_mask(PARAMS, decay_norm_and_bias=True, decay_vmp=True)
    assert mask["backbone"]["bn"]["bias"] is True and mask["vmp"]["n"] is True


def test_sgd_weight_decay_is_coupled_l2_like_pytorch():
    # PyTorch SGD: g' = g + wd * p; v = mu * v + g'; p -= lr * v. One step from zero momentum: p -= lr * (g + wd p).
    tx = optim.make_optimizer("sgd", optax.constant_schedule(0.1), PARAMS, momentum=0.9, weight_decay=0.5)
    grads = {
        "vmp": {"m": jnp.float32(1.0), "n": jnp.float32(1.0)},
        "backbone": {
            "conv": {"kernel": jnp.full((2, 2), 1.0)},
            "bn": {"scale": jnp.full(2, 1.0), "bias": jnp.full(2, 1.0)},
        },
    }
    updates, _ = tx.update(grads, tx.init(PARAMS), PARAMS)
    new = optax.apply_updates(PARAMS, updates)
    np.testing.assert_allclose(new["backbone"]["conv"]["kernel"], 1 - 0.1 * (1 + 0.5 * 1), rtol=1e-6)
    np.testing.assert_allclose(new["backbone"]["bn"]["scale"], 1 - 0.1 * 1, rtol=1e-6)  # not decayed
    assert float(new["vmp"]["m"]) == pytest.approx(0.5 - 0.1)


def test_clipping_bounds_the_update():
    tx = optim.make_optimizer(
        "sgd", optax.constant_schedule(1.0), {"w": {"kernel": jnp.zeros(4)}}, momentum=0.0, clip_grad_norm=1.0
    )
    grads = {"w": {"kernel": jnp.full(4, 10.0)}}
    updates, _ = tx.update(grads, tx.init(grads), {"w": {"kernel": jnp.zeros(4)}})
    assert float(optax.tree.norm(updates)) == pytest.approx(1.0, rel=1e-5)


def test_bad_names_raise():
    with pytest.raises(ValueError, match=r"schedule must be one of.*'linear'"):
        optim.learning_rate_schedule("linear", 1.0, 10)
    with pytest.raises(ValueError, match=r"optimizer must be one of.*'lamb'"):
        optim.make_optimizer("lamb", optax.constant_schedule(1.0), PARAMS)
    with pytest.raises(ValueError, match=r"one more relative rate than boundaries"):
        optim.learning_rate_schedule("steps", 1.0, 10, boundaries=(5,), relative_rates=(1.0,))
