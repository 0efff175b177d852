"""The train state and the pure per-device steps of VMP + backbone, wrapped in `jax.shard_map` over the run's mesh.

The steps are written per device and mapped over a mesh of processes x local devices, axes ('hosts', 'data')
(`vmp_jax.training.mesh`; the successor of the pmap programming model): the batch is split over both, i.e. over
every device, and parameters are replicated.
Inside `shard_map`, the gradient of a replicated parameter is already summed over the axis, so the step
differentiates the `pmean`-ed loss instead of `pmean`-ing the gradients (which would scale them by the device
count). BatchNorm statistics are synced over both axes, over 'data' only (within each process) or not at all:
`config.model.bn_sync`, applied by `factory.build_model`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax import lax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from vmp_jax.data.transforms import standardize
from vmp_jax.models import factory
from vmp_jax.motion_prompt import pn_coefficients
from vmp_jax.training.mesh import AXIS


class TrainState(flax.struct.PyTreeNode):
    """Everything that changes during training; the model and optimiser definitions are passed beside it."""

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy. logits: (B, C), labels: (B,) int -> () float32."""
    return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels).mean()


def train_step(
    state: TrainState,
    batch: dict,
    rng: jax.Array,
    *,
    model: nn.Module,
    tx: optax.GradientTransformation,
    vmp_lambda: float,
    learning_rate: Callable[[jax.Array], jax.Array],
    grad_accum_steps: int = 1,
) -> tuple[TrainState, dict]:
    """One optimiser step on this device's part of the batch (run under shard_map over 'data').

    batch: {'frames': (b, T+1, H, W, 3) uint8, 'label': (b,) int32}. Returns the new state and metrics that
    are already averaged over devices. With `grad_accum_steps` k > 1 the b clips go through the model as k
    micro-batches of b/k in a `lax.scan` (activations of one micro-batch in memory at a time) and the step uses
    the mean of their gradients: the gradient of the whole batch (BatchNorm normalises and updates its statistics
    per micro-batch, as accumulation in PyTorch does). Metrics are those of the whole batch either way.
    """
    rng = jax.random.fold_in(jax.random.fold_in(rng, state.step), lax.axis_index(AXIS))
    frames = standardize(batch["frames"])
    labels = batch["label"]

    def loss_fn(params, batch_stats, frames, labels, rng):
        (logits, variation), new_vars = model.apply(
            {"params": params, "batch_stats": batch_stats},
            frames,
            train=True,
            mutable=["batch_stats"],
            rngs={"dropout": rng},
        )
        ce = cross_entropy(logits, labels)
        loss = lax.pmean(ce + vmp_lambda * variation, AXIS)
        return loss, (ce, variation, logits, new_vars.get("batch_stats", {}))

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    if grad_accum_steps == 1:
        (loss, (ce, variation, logits, batch_stats)), grads = grad_fn(
            state.params, state.batch_stats, frames, labels, rng
        )
    else:
        k = grad_accum_steps
        split = lambda x: x.reshape(k, x.shape[0] // k, *x.shape[1:])  # noqa: E731  (micro-batch i: rows i*b/k...)

        def micro_step(carry, inputs):
            grad_sum, batch_stats = carry
            micro_frames, micro_labels, i = inputs
            (loss, (ce, variation, logits, batch_stats)), grads = grad_fn(
                state.params, batch_stats, micro_frames, micro_labels, jax.random.fold_in(rng, i)
            )
            return (jax.tree.map(jnp.add, grad_sum, grads), batch_stats), (loss, ce, variation, logits)

        zeros = jax.tree.map(jnp.zeros_like, state.params)
        (grad_sum, batch_stats), (loss, ce, variation, logits) = lax.scan(
            micro_step, (zeros, state.batch_stats), (split(frames), split(labels), jnp.arange(k))
        )
        grads = jax.tree.map(lambda g: g / k, grad_sum)
        loss, ce, variation = jnp.mean(loss), jnp.mean(ce), jnp.mean(variation)  # equal micro-batches: the means
        logits = logits.reshape(-1, logits.shape[-1])
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    accuracy = jnp.mean((jnp.argmax(logits, -1) == labels).astype(jnp.float32))
    metrics = {
        "loss": loss,
        "cross_entropy": lax.pmean(ce, AXIS),
        "variation": lax.pmean(variation, AXIS),
        "accuracy": lax.pmean(accuracy, AXIS),
        "learning_rate": learning_rate(state.step),
        "grad_norm": optax.tree.norm(grads),
        "param_norm": optax.tree.norm(params),
    }
    if "vmp" in params:  # slope a and shift b, or the PN's coefficient (pixel means when per-pixel)
        coefficients = pn_coefficients(params["vmp"], model.vmp_pn)
        metrics.update({f"vmp_{name}": jnp.mean(value) for name, value in coefficients.items()})
    new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state)
    return new_state, metrics


def eval_step(state: TrainState, batch: dict, *, model: nn.Module) -> jax.Array:
    """Logits of this device's clips (run under shard_map). frames: (b, T+1, H, W, 3) uint8 -> (b, C) float32."""
    logits, _ = model.apply(
        {"params": state.params, "batch_stats": state.batch_stats}, standardize(batch["frames"]), train=False
    )
    return logits.astype(jnp.float32)


def make_train_step(mesh, model, tx, vmp_lambda, learning_rate, grad_accum_steps: int = 1):
    """`train_step` over all devices of `mesh`, jitted, with the state donated."""
    step = functools.partial(
        train_step,
        model=model,
        tx=tx,
        vmp_lambda=vmp_lambda,
        learning_rate=learning_rate,
        grad_accum_steps=grad_accum_steps,
    )
    sharded = jax.shard_map(step, mesh=mesh, in_specs=(P(), P(AXIS), P()), out_specs=(P(), P()))
    return jax.jit(sharded, donate_argnums=(0,))


def make_eval_step(mesh, model):
    """`eval_step` over all devices of `mesh`, jitted; logits come back sharded like the batch."""
    step = functools.partial(eval_step, model=model)
    return jax.jit(jax.shard_map(step, mesh=mesh, in_specs=(P(), P(AXIS)), out_specs=P(AXIS)))


def create_train_state(variables: dict, tx: optax.GradientTransformation) -> TrainState:
    params = variables["params"]
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=tx.init(params),
    )


def initial_state(
    model: nn.Module,
    tx: optax.GradientTransformation,
    rng: jax.Array,
    input_shape: tuple[int, ...],
    mesh,
    variables: dict | None = None,
) -> TrainState:
    """A fresh TrainState replicated over `mesh`, in one compiled program; `variables` (e.g. converted from a
    pretrained checkpoint) replace the random initialisation when given."""
    replicated = NamedSharding(mesh, P())
    if variables is None:
        make = lambda: create_train_state(factory.init_variables(model, rng, input_shape), tx)  # noqa: E731
        return jax.jit(make, out_shardings=replicated)()
    return jax.jit(lambda v: create_train_state(v, tx), out_shardings=replicated)(variables)
