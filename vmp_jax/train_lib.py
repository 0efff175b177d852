"""Training and evaluation of VMP + backbone: the train state, the per-device steps, and the loop.

The steps are written per device and wrapped with `jax.shard_map` over a 1-D mesh with axis 'data' (the
successor of the pmap programming model): the batch is split over devices, parameters are replicated.
Inside `shard_map`, the gradient of a replicated parameter is already summed over the axis, so the step
differentiates the `pmean`-ed loss instead of `pmean`-ing the gradients (which would scale them by the device
count). BatchNorm statistics are synced through `BatchNorm(axis_name='data')` in the model.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import signal
import time
from typing import Any, Callable

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from jax import lax
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from vmp_jax import checkpointing
from vmp_jax import config_checks
from vmp_jax import optim
from vmp_jax import trained_run
from vmp_jax.data import builders as data_builders
from vmp_jax.data import multiview
from vmp_jax.data.transforms import standardize
from vmp_jax.metric_writers import MetricWriter
from vmp_jax.models import classifier
from vmp_jax.motion_prompt import normal_init, pn_coefficients

AXIS = "data"


class TrainState(flax.struct.PyTreeNode):
    """Everything that changes during training; the model and optimiser definitions are passed beside it."""

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any


def make_mesh() -> jax.sharding.Mesh:
    """A 1-D mesh over every device of every process, axis 'data'."""
    return jax.make_mesh((jax.device_count(),), (AXIS,))


# ----------------------------------------------------------------------------------------------- steps


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy. logits: (B, C), labels: (B,) int -> () float32."""
    return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels).mean()


def train_step(state: TrainState, batch: dict, rng: jax.Array, *, model: nn.Module,
               tx: optax.GradientTransformation, vmp_lambda: float,
               learning_rate: Callable[[jax.Array], jax.Array]) -> tuple[TrainState, dict]:
    """One optimiser step on this device's part of the batch (run under shard_map over 'data').

    batch: {'frames': (b, T+1, H, W, 3) uint8, 'label': (b,) int32}. Returns the new state and metrics that
    are already averaged over devices.
    """
    rng = jax.random.fold_in(jax.random.fold_in(rng, state.step), lax.axis_index(AXIS))
    frames = standardize(batch["frames"])
    labels = batch["label"]

    def loss_fn(params):
        (logits, variation), new_vars = model.apply(
            {"params": params, "batch_stats": state.batch_stats}, frames, train=True, mutable=["batch_stats"],
            rngs={"dropout": rng})
        ce = cross_entropy(logits, labels)
        loss = lax.pmean(ce + vmp_lambda * variation, AXIS)
        return loss, (ce, variation, logits, new_vars["batch_stats"])

    (loss, (ce, variation, logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
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
    logits, _ = model.apply({"params": state.params, "batch_stats": state.batch_stats},
                            standardize(batch["frames"]), train=False)
    return logits.astype(jnp.float32)


def make_train_step(mesh, model, tx, vmp_lambda, learning_rate):
    """`train_step` over all devices of `mesh`, jitted, with the state donated."""
    step = functools.partial(train_step, model=model, tx=tx, vmp_lambda=vmp_lambda, learning_rate=learning_rate)
    sharded = jax.shard_map(step, mesh=mesh, in_specs=(P(), P(AXIS), P()), out_specs=(P(), P()))
    return jax.jit(sharded, donate_argnums=(0,))


def make_eval_step(mesh, model):
    """`eval_step` over all devices of `mesh`, jitted; logits come back sharded like the batch."""
    step = functools.partial(eval_step, model=model)
    return jax.jit(jax.shard_map(step, mesh=mesh, in_specs=(P(), P(AXIS)), out_specs=P(AXIS)))


def global_batch(mesh, local: dict, keys=("frames", "label")) -> dict:
    """Host-local numpy batch -> global arrays sharded over 'data' (each process holds its rows)."""
    sharding = NamedSharding(mesh, P(AXIS))
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(local[k])) for k in keys}


# ----------------------------------------------------------------------------------------------- state


def build_model(model_config: ml_collections.ConfigDict, num_classes: int) -> nn.Module:
    """The classifier described by `config.model`, with BatchNorm synced over the 'data' axis."""
    return classifier.VideoClassifier(
        num_classes=num_classes,
        backbone=model_config.backbone,
        backbone_kwargs=tuple(sorted(backbone_kwargs(model_config).items())),
        use_vmp=model_config.use_vmp,
        vmp_kwargs=vmp_kwargs(model_config.vmp),
        dtype=jnp.dtype(model_config.dtype),
        bn_axis_name=AXIS,
    )


def backbone_kwargs(model_config: ml_collections.ConfigDict) -> dict:
    """The chosen backbone's keyword arguments: `config.model.<backbone name>` (none if that key is absent)."""
    name = model_config.backbone
    return model_config[name].to_dict() if name in model_config else {}


def vmp_kwargs(vmp_config: ml_collections.ConfigDict) -> dict:
    """VideoMotionPrompt fields from `config.model.vmp` (initialisers built from mean/std numbers)."""
    return {
        "luma": vmp_config.luma,
        "parametrization": vmp_config.parametrization,
        "m_init": normal_init(vmp_config.m_init_mean, vmp_config.m_init_std),
        "n_init": normal_init(vmp_config.n_init_mean, vmp_config.n_init_std),
        "pn": vmp_config.pn,
        # pn_init_value 0 keeps the PN's default coefficient; the spread is in log space, where it is learned
        "pn_init": (normal_init(math.log(vmp_config.pn_init_value), vmp_config.pn_init_log_std)
                    if vmp_config.pn_init_value > 0 else None),
    }


def init_variables(model: nn.Module, rng: jax.Array, input_shape: tuple[int, ...]) -> dict:
    """Model variables for clips of `input_shape` (1, T+1, H, W, 3)."""
    params_rng, dropout_rng = jax.random.split(rng)
    # train=False: BatchNorm uses its running averages, so no 'data' axis is needed outside shard_map.
    return model.init({"params": params_rng, "dropout": dropout_rng}, jnp.zeros(input_shape, jnp.float32),
                      train=False)


def create_train_state(variables: dict, tx: optax.GradientTransformation) -> TrainState:
    params = variables["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=variables.get("batch_stats", {}),
                      opt_state=tx.init(params))


def initial_state(model: nn.Module, tx: optax.GradientTransformation, rng: jax.Array,
                  input_shape: tuple[int, ...], mesh, variables: dict | None = None) -> TrainState:
    """A fresh TrainState replicated over `mesh`, in one compiled program; `variables` (e.g. converted from a
    pretrained checkpoint) replace the random initialisation when given."""
    replicated = NamedSharding(mesh, P())
    if variables is None:
        make = lambda: create_train_state(init_variables(model, rng, input_shape), tx)  # noqa: E731
        return jax.jit(make, out_shardings=replicated)()
    return jax.jit(lambda v: create_train_state(v, tx), out_shardings=replicated)(variables)


# ----------------------------------------------------------------------------------------------- eval


def evaluate(eval_step_fn, state: TrainState, dataset, mesh, num_classes: int, num_views: int) -> dict:
    """One pass over the eval split; multi-view scores per video (top-1, top-5, mean-class accuracy)."""
    accumulator = multiview.MultiViewAccumulator(num_classes, num_views)
    for batch in dataset:
        logits = eval_step_fn(state, global_batch(mesh, batch, keys=("frames",)))
        local = {k: np.asarray(batch[k]) for k in ("video_index", "label", "mask")}
        if jax.process_count() > 1:
            logits = multihost_utils.process_allgather(logits, tiled=True)
            local = multihost_utils.process_allgather(local, tiled=True)
        accumulator.update(np.asarray(logits), local["video_index"], local["label"], local["mask"])
    return accumulator.result()


# ----------------------------------------------------------------------------------------------- loop


@dataclasses.dataclass
class _StopFlag:
    """Set by SIGTERM/SIGINT; the loop saves a checkpoint and returns at the next step boundary."""

    signum: int | None = None

    def __call__(self, signum, frame):
        del frame
        self.signum = signum


def run_length(config: ml_collections.ConfigDict, num_train_examples: int) -> tuple[int, int]:
    """(steps per epoch, total steps): `config.num_train_steps` if > 0, else epochs x steps per epoch."""
    steps_per_epoch = max(num_train_examples // config.batch_size, 1)
    total = config.num_train_steps if config.num_train_steps > 0 else int(config.num_epochs * steps_per_epoch)
    return steps_per_epoch, total


def make_schedule(config: ml_collections.ConfigDict, steps_per_epoch: int, total_steps: int) -> optax.Schedule:
    s = config.schedule
    return optim.learning_rate_schedule(
        s.name, s.base_lr, total_steps, warmup_steps=int(round(s.warmup_epochs * steps_per_epoch)),
        boundaries=[int(round(e * steps_per_epoch)) for e in s.boundaries_epochs],
        relative_rates=tuple(s.relative_rates), warmup_init=s.warmup_init)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
    """Trains `config` into `workdir`, resuming from its latest checkpoint if there is one; returns the state."""
    config_checks.validate(config, num_devices=jax.device_count(), num_processes=jax.process_count())
    workdir = os.path.abspath(workdir)  # orbax needs absolute paths
    is_main = jax.process_index() == 0
    if is_main:
        os.makedirs(workdir, exist_ok=True)
        with open(os.path.join(workdir, "config.json"), "w", encoding="utf-8") as f:
            f.write(config.to_json_best_effort(indent=2, sort_keys=True))

    mesh = make_mesh()
    num_frames = config.num_frames + (1 if config.model.use_vmp else 0)
    data = data_builders.make_datasets(
        config.data, num_frames=num_frames, global_batch_size=config.batch_size,
        eval_batch_size=config.eval_batch_size, seed=config.seed, process_index=jax.process_index(),
        process_count=jax.process_count())
    config_checks.validate_num_classes(config, data.num_classes)
    steps_per_epoch, total_steps = run_length(config, data.num_train_examples)
    if is_main:
        trained_run.write_run_info(workdir, data.class_names, num_frames, data.frame_size, total_steps)
    schedule = make_schedule(config, steps_per_epoch, total_steps)

    model = build_model(config.model, data.num_classes)
    init_rng, step_rng = jax.random.split(jax.random.key(config.seed))
    input_shape = (1, num_frames, *data.frame_size, 3)
    variables = None
    if config.init_checkpoint:
        from vmp_jax import convert

        random_init = jax.jit(lambda r: init_variables(model, r, input_shape))(init_rng)
        variables = convert.load_pretrained_backbone(jax.device_get(random_init), config.init_checkpoint,
                                                     config.model.x3d.variant, rng=init_rng)
        if is_main:
            print(f"Backbone initialised from {config.init_checkpoint}", flush=True)
    o = config.optimizer
    abstract = jax.eval_shape(lambda r: init_variables(model, r, input_shape), init_rng)
    tx = optim.make_optimizer(o.name, schedule, abstract["params"], momentum=o.momentum, nesterov=o.nesterov,
                              weight_decay=o.weight_decay, decay_norm_and_bias=o.decay_norm_and_bias,
                              decay_vmp=o.decay_vmp, clip_grad_norm=o.clip_grad_norm or None)
    state = initial_state(model, tx, init_rng, input_shape, mesh, variables)
    del variables

    train_iter = iter(data.train)
    checkpoints = checkpointing.Checkpoints(os.path.join(workdir, "checkpoints"), keep_last=config.keep_last,
                                            keep_best=config.keep_best, best_metric="top1")
    restored_step, state, train_iter = checkpoints.restore_latest(state, train_iter)
    if restored_step is not None:
        logging.info("Resumed from %s at step %d", checkpoints.directory, restored_step)
    start_step = int(jax.device_get(state.step))

    p_train_step = make_train_step(mesh, model, tx, config.vmp_lambda, schedule)
    p_eval_step = make_eval_step(mesh, model)
    stop = _StopFlag()
    previous_handlers = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    writer = MetricWriter(workdir, total_steps, start_step, enabled=is_main, progress_bar=config.progress_bar)
    if restored_step is not None:
        writer.message(f"Resumed from step {restored_step} ({checkpoints.directory}).")
    try:
        state = _loop(config, state, train_iter, data, mesh, p_train_step, p_eval_step, step_rng, checkpoints,
                      writer, stop, start_step, total_steps)
    finally:
        checkpoints.close()
        writer.close()
        for s, handler in previous_handlers.items():
            signal.signal(s, handler)
    return state


def _loop(config, state, train_iter, data, mesh, p_train_step, p_eval_step, step_rng, checkpoints, writer, stop,
          start_step, total_steps):
    pending = None  # (step, metrics) of the step in flight: checked for NaN one step later, without a stall
    window_start, window_steps = time.perf_counter(), 0
    step = start_step

    def check_finite(step_metrics, at_step):
        loss, param_norm = float(step_metrics["loss"]), float(step_metrics["param_norm"])
        if not (np.isfinite(loss) and np.isfinite(param_norm)):
            raise FloatingPointError(
                f"non-finite loss ({loss}, parameter norm {param_norm}) at step {at_step}; training stopped. "
                f"The last good checkpoint (step {checkpoints.latest_step()}) is kept in {checkpoints.directory}")

    def save(at_step, eval_metrics=None):
        checkpoints.save(at_step, state, train_iter, metrics=eval_metrics)

    while step < total_steps:
        batch = global_batch(mesh, next(train_iter))
        state, metrics = p_train_step(state, batch, step_rng)
        if pending is not None:
            check_finite(*pending)
        step += 1
        pending = (metrics, step)
        window_steps += 1
        writer.advance(step)

        if step % config.log_every_steps == 0 or step == total_steps:
            check_finite(*pending)
            host = {k: float(v) for k, v in jax.device_get(metrics).items()}
            elapsed = time.perf_counter() - window_start
            host["clips_per_s"] = window_steps * config.batch_size / elapsed
            writer.write(step, "train", host)
            window_start, window_steps = time.perf_counter(), 0

        eval_now = step == total_steps or (config.eval_every_steps > 0 and step % config.eval_every_steps == 0)
        if eval_now:
            check_finite(*pending)
            results = evaluate(p_eval_step, state, data.eval, mesh, data.num_classes, data.eval_num_views)
            writer.write(step, "eval", results)
            writer.message(f"step {step}: eval " + ", ".join(f"{k}={v:.4f}" for k, v in results.items()))
            save(step, results)
        elif step % config.checkpoint_every_steps == 0 or step == total_steps:
            check_finite(*pending)
            save(step)

        if _should_stop(stop):
            if checkpoints.latest_step() != step:
                check_finite(*pending)
                save(step)
            checkpoints.wait()
            writer.message(f"Stopped by signal {stop.signum} at step {step}; checkpoint saved. "
                           "Rerun the same command to resume.")
            logging.warning("Stopped by signal %s at step %d", stop.signum, step)
            return state
    if pending is not None:
        check_finite(*pending)
    checkpoints.wait()
    return state


def _should_stop(stop: _StopFlag) -> bool:
    """Every process stops at the same step: any process's signal stops all of them."""
    if jax.process_count() == 1:
        return stop.signum is not None
    flags = multihost_utils.process_allgather(np.asarray(stop.signum is not None))
    return bool(np.any(flags))

