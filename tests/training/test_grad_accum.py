"""Gradient accumulation (`config.grad_accum_steps`): k micro-batches give the step of the k-times batch."""

import jax
import numpy as np
import pytest
from tiny_run import setup, tiny_config

from vmp_jax import cli
from vmp_jax.training import steps, validation
from vmp_jax.training.mesh import global_batch

pytestmark = pytest.mark.usefixtures("fast_compile")


def one_step(config, num_devices):
    mesh, model, tx, schedule, state, batch = setup(config, num_devices)
    step = steps.make_train_step(mesh, model, tx, config.vmp_lambda, schedule, config.grad_accum_steps)
    with jax.set_mesh(mesh):
        new_state, metrics = step(state, global_batch(mesh, batch), jax.random.key(1))
    return jax.device_get(new_state), jax.device_get(metrics)


def no_batchnorm_config(**overrides):
    """TimeSformer (no BatchNorm, no stochastic depth): the gradient does not depend on how the batch is split."""
    c = tiny_config(**overrides)
    c.model.backbone = "timesformer"
    c.model.timesformer.update(
        depth=1, width=32, num_heads=2, patch_size=8, image_size=32, num_frames=4, drop_path_rate=0.0
    )
    return c


def test_accumulated_micro_batches_give_the_gradient_of_the_whole_batch():
    whole, whole_metrics = one_step(no_batchnorm_config(), 2)
    accumulated, metrics = one_step(no_batchnorm_config(grad_accum_steps=4), 2)  # 2 devices x 4 x 1 clip
    for key in ("loss", "cross_entropy", "variation", "accuracy", "grad_norm", "param_norm"):
        np.testing.assert_allclose(metrics[key], whole_metrics[key], rtol=2e-5, err_msg=key)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), accumulated.params, whole.params)
    initial = jax.device_get(setup(no_batchnorm_config(), 2)[4].params)
    moved = jax.tree.leaves(jax.tree.map(lambda a, b: np.abs(a - b).max(), accumulated.params, initial))
    assert max(moved) > 1e-4  # the step did move the parameters


def test_batchnorm_statistics_are_updated_per_micro_batch():
    state, _ = one_step(tiny_config(grad_accum_steps=2), 1)
    whole, _ = one_step(tiny_config(), 1)
    initial = jax.device_get(setup(tiny_config(), 1)[4].batch_stats)
    # Two momentum-0.9 updates move the running mean further from its initial value than one.
    first = lambda tree: jax.tree.leaves(tree)[0]  # noqa: E731
    assert (
        np.abs(first(state.batch_stats) - first(initial)).sum()
        > np.abs(first(whole.batch_stats) - first(initial)).sum()
    )


@pytest.mark.parametrize("value", [0, 3])
def test_grad_accum_steps_must_divide_the_per_device_batch(value):
    with pytest.raises(
        cli.ConfigError,
        match=f"config.grad_accum_steps={value}: expected >= 1 and dividing the per-device batch",
    ):
        validation.validate(tiny_config(grad_accum_steps=value), num_devices=2)
