"""Training and evaluation of VMP + backbone: the train state, the per-device steps, and the run (the loop itself:
`vmp_jax.training_loop`).

The steps are written per device and wrapped with `jax.shard_map` over a mesh of processes x local devices, axes
('hosts', 'data') (the successor of the pmap programming model): the batch is split over both, i.e. over every
device, and parameters are replicated.
Inside `shard_map`, the gradient of a replicated parameter is already summed over the axis, so the step
differentiates the `pmean`-ed loss instead of `pmean`-ing the gradients (which would scale them by the device
count). BatchNorm statistics are synced over both axes, over 'data' only (within each process) or not at all:
`config.model.bn_sync`, applied by `factory.build_model`.
"""

from __future__ import annotations

import functools
import os
import signal
from collections.abc import Callable
from typing import Any

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

from vmp_jax import checkpointing, config_checks, optim, profiling, trained_run
from vmp_jax.data import builders as data_builders
from vmp_jax.data import multiview
from vmp_jax.data import pipeline as data_pipeline
from vmp_jax.data.transforms import standardize
from vmp_jax.metric_writers import METRICS_FILE, TENSORBOARD_DIR, MetricWriter
from vmp_jax.models import factory
from vmp_jax.motion_prompt import pn_coefficients
from vmp_jax.training_loop import Cadence, InterruptibleIterator, StopFlag, train_loop

AXIS = ("hosts", "data")  # the mesh axes the batch is split over: across processes, then within one


class TrainState(flax.struct.PyTreeNode):
    """Everything that changes during training; the model and optimiser definitions are passed beside it."""

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any


def make_mesh(devices=None) -> jax.sharding.Mesh:
    """A mesh over `devices` (default: every device of every process), one row per process, axes `AXIS`."""
    devices = sorted(jax.devices() if devices is None else devices, key=lambda d: (d.process_index, d.id))
    processes = len({d.process_index for d in devices})
    shape = (processes, len(devices) // processes)
    mesh = jax.make_mesh(shape, AXIS, devices=devices)  # on TPUs, in an order that suits the interconnect
    if all(len({d.process_index for d in row}) == 1 for row in mesh.devices):
        return mesh
    return jax.sharding.Mesh(np.array(devices).reshape(shape), AXIS, axis_types=mesh.axis_types)


# ----------------------------------------------------------------------------------------------- steps


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


def global_batch(mesh, local: dict, keys=("frames", "label")) -> dict:
    """Host-local numpy batch -> global arrays sharded over 'data' (each process holds its rows)."""
    sharding = NamedSharding(mesh, P(AXIS))
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(local[k])) for k in keys}


# ----------------------------------------------------------------------------------------------- state


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


# ----------------------------------------------------------------------------------------------- eval


def evaluate_views(
    eval_step_fn, state: TrainState, dataset, mesh, num_classes: int, num_views: int
) -> multiview.MultiViewAccumulator:
    """One pass over the eval split, every view's probabilities accumulated by video.

    The batch's 'video_index', 'label' and 'mask' travel as global arrays sharded like the frames, so they are
    gathered in the same (global, mesh) order as the logits: a process's rows need not be adjacent in the mesh
    (`jax.make_mesh` orders TPU devices by the physical torus, which can interleave hosts).
    """
    accumulator = multiview.MultiViewAccumulator(num_classes, num_views)
    for batch in dataset:
        arrays = global_batch(mesh, batch, keys=("frames", "video_index", "label", "mask"))
        rows = {"logits": eval_step_fn(state, {"frames": arrays.pop("frames")}), **arrays}
        if jax.process_count() > 1:
            rows = multihost_utils.process_allgather(rows, tiled=True)
        rows = jax.device_get(rows)
        accumulator.update(np.asarray(rows["logits"]), rows["video_index"], rows["label"], rows["mask"])
    return accumulator


def evaluate(eval_step_fn, state: TrainState, dataset, mesh, num_classes: int, num_views: int) -> dict:
    """One pass over the eval split; multi-view scores per video (top-1, top-5, mean-class accuracy)."""
    return evaluate_views(eval_step_fn, state, dataset, mesh, num_classes, num_views).result()


# ----------------------------------------------------------------------------------------------- run


def run_length(config: ml_collections.ConfigDict, num_train_examples: int) -> tuple[int, int]:
    """(steps per epoch, total steps): `config.num_train_steps` if > 0, else epochs x steps per epoch."""
    steps_per_epoch = max(num_train_examples // config.batch_size, 1)
    total = config.num_train_steps if config.num_train_steps > 0 else int(config.num_epochs * steps_per_epoch)
    return steps_per_epoch, total


def make_schedule(config: ml_collections.ConfigDict, steps_per_epoch: int, total_steps: int) -> optax.Schedule:
    s = config.schedule
    return optim.learning_rate_schedule(
        s.name,
        s.base_lr,
        total_steps,
        warmup_steps=int(round(s.warmup_epochs * steps_per_epoch)),
        boundaries=[int(round(e * steps_per_epoch)) for e in s.boundaries_epochs],
        relative_rates=tuple(s.relative_rates),
        warmup_init=s.warmup_init,
    )


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str, mesh: jax.sharding.Mesh | None = None
) -> TrainState:
    """Trains `config` into `workdir`, resuming from its latest checkpoint if there is one; returns the state.

    mesh: a 1-D mesh with axis 'data' over every device (default `make_mesh()`); any device order works.
    """
    config_checks.validate(config, num_devices=jax.device_count(), num_processes=jax.process_count())
    workdir = os.path.abspath(workdir)  # orbax needs absolute paths
    is_main = jax.process_index() == 0
    # A rerun on a workdir with checkpoints continues that run: refuse, before anything is rewritten, a config
    # its checkpoints cannot take; the run's files are replaced only once the state is restored.
    checkpoint_dir = os.path.join(workdir, "checkpoints")
    previous = _previous_run(workdir) if checkpointing.has_steps(checkpoint_dir) else None
    if previous is not None:
        changes = config_checks.resume_changes(previous[0], config, workdir)
        if changes and is_main:
            print("Resuming with changed keys (they extend or observe the run): " + "; ".join(changes), flush=True)

    mesh = make_mesh() if mesh is None else mesh
    num_frames = factory.model_num_frames(config.num_frames, config.model.use_vmp)
    data = data_builders.make_datasets(
        config.data,
        num_frames=num_frames,
        global_batch_size=config.batch_size,
        eval_batch_size=config.eval_batch_size,
        seed=config.seed,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
    )
    config_checks.validate_num_classes(config, data.num_classes)
    factory.validate_backbone(config.model, config.num_frames, data.frame_size)
    steps_per_epoch, total_steps = run_length(config, data.num_train_examples)
    schedule = make_schedule(config, steps_per_epoch, total_steps)

    model = factory.build_model(config.model, data.num_classes, bn_axis_name=AXIS)  # model.bn_sync narrows it
    init_rng, step_rng = jax.random.split(jax.random.key(config.seed))
    input_shape = (1, num_frames, *data.frame_size, 3)
    variables = None
    if config.init_checkpoint and previous is None:  # a resumed run takes its backbone from its checkpoint
        from vmp_jax import convert  # torch-side code only when a checkpoint is given

        random_init = jax.jit(lambda r: factory.init_variables(model, r, input_shape))(init_rng)
        variables = convert.load_pretrained_backbone(
            jax.device_get(random_init),
            config.init_checkpoint,
            config.model.backbone,
            factory.backbone_kwargs(config.model),
        )
        if is_main:
            print(f"Backbone initialised from {config.init_checkpoint}", flush=True)
    o = config.optimizer
    abstract = jax.eval_shape(lambda r: factory.init_variables(model, r, input_shape), init_rng)
    tx = optim.make_optimizer(
        o.name,
        schedule,
        abstract["params"],
        momentum=o.momentum,
        nesterov=o.nesterov,
        weight_decay=o.weight_decay,
        decay_norm_and_bias=o.decay_norm_and_bias,
        decay_vmp=o.decay_vmp,
        clip_grad_norm=o.clip_grad_norm or None,
    )
    state = initial_state(model, tx, init_rng, input_shape, mesh, variables)
    del variables

    train_iter = iter(data.train)
    checkpoints = checkpointing.Checkpoints(
        checkpoint_dir, keep_last=config.keep_last, keep_best=config.keep_best, best_metric="top1"
    )
    per_process_batch = config.batch_size // jax.process_count()
    restored_step, state, train_iter = checkpoints.restore_latest(
        state,
        train_iter,
        data_position=lambda step: data_pipeline.train_state_at(
            step * per_process_batch // data.clips_per_item, data.num_workers
        ),
    )
    if restored_step is not None:
        logging.info("Resumed from %s at step %d", checkpoints.directory, restored_step)
    start_step = int(jax.device_get(state.step))
    if is_main:
        os.makedirs(workdir, exist_ok=True)
        trained_run.write_json(
            os.path.join(workdir, trained_run.CONFIG), config.to_json_best_effort(indent=2, sort_keys=True)
        )
        trained_run.write_run_info(
            workdir, data.class_names, num_frames, data.frame_size, total_steps, num_devices=jax.device_count()
        )
        trained_on = previous[1].get("num_devices") if previous is not None else None
        if restored_step is not None and trained_on is not None and trained_on != jax.device_count():
            print(
                f"Resuming on {jax.device_count()} devices a run trained on {trained_on} up to step "
                f"{restored_step}: the global batch is the same, the sums are split differently (last-bit "
                "differences from an uninterrupted run).",
                flush=True,
            )
    if start_step >= total_steps:
        checkpoints.close()
        if is_main:
            print(
                f"The run in {workdir} already finished: step {start_step} of {total_steps}, nothing to train "
                "(a larger --config.num_train_steps trains on).\n" + _next_steps(workdir),
                flush=True,
            )
        return state

    p_train_step = make_train_step(mesh, model, tx, config.vmp_lambda, schedule, config.grad_accum_steps)
    p_eval_step = make_eval_step(mesh, model)
    stop = StopFlag()
    batches = InterruptibleIterator(train_iter, stop, transfer=lambda batch: global_batch(mesh, batch))
    previous_handlers = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    writer = MetricWriter(workdir, total_steps, start_step, enabled=is_main, progress_bar=config.progress_bar)
    if restored_step is not None:
        writer.message(f"Resumed from step {restored_step} ({checkpoints.directory}).")
    cadence = Cadence(total_steps, config.log_every_steps, config.eval_every_steps, config.checkpoint_every_steps)
    try:
        state = train_loop(
            state,
            start_step,
            cadence,
            batches=batches,
            train_step=profiling.traced(
                lambda s, batch: p_train_step(s, batch, step_rng),
                profiling.parse_steps(config.profile_steps),
                os.path.join(workdir, profiling.PROFILE_DIR),
                start_step,
            ),
            evaluate=lambda s, final: _evaluations(p_eval_step, s, data, mesh, final),
            save=lambda step, s, metrics=None: checkpoints.save(step, s, batches, metrics=metrics),
            checkpoints=checkpoints,
            writer=writer,
            stop=stop,
            batch_size=config.batch_size,
        )
    finally:
        batches.close()
        checkpoints.close()
        writer.close()
        for s, handler in previous_handlers.items():
            signal.signal(s, handler)
    if is_main and int(jax.device_get(state.step)) == total_steps:
        print(
            f"Finished {total_steps} steps in {workdir}:\n"
            f"  metrics      {os.path.join(workdir, METRICS_FILE)} (TensorBoard: tensorboard --logdir "
            f"{os.path.join(workdir, TENSORBOARD_DIR)})\n"
            f"  checkpoints  {checkpoints.directory} (steps {', '.join(map(str, checkpoints.all_steps()))})\n"
            + _next_steps(workdir),
            flush=True,
        )
    return state


def _evaluations(eval_step_fn, state: TrainState, data: data_builders.DataSplits, mesh, final: bool) -> dict:
    """{'eval': scores of the evaluation during training[, 'test': the full multi-view test, at the end]}.

    The evaluations during training take data.eval_during_training_clips x _crops views per video (what keep_best
    ranks checkpoints by, the last step included); the last step also takes data.eval_num_clips x _crops as 'test'
    when those views differ.
    """
    if data.eval_during_training is None:
        return {"eval": evaluate(eval_step_fn, state, data.eval, mesh, data.num_classes, data.eval_num_views)}
    splits = {
        "eval": evaluate(
            eval_step_fn, state, data.eval_during_training, mesh, data.num_classes, data.eval_during_training_num_views
        )
    }
    if final:
        splits["test"] = evaluate(eval_step_fn, state, data.eval, mesh, data.num_classes, data.eval_num_views)
    return splits


def _previous_run(workdir: str) -> tuple[dict, dict] | None:
    """(saved config, saved run info) of the run in `workdir`, None when it saved no config."""
    path = os.path.join(workdir, trained_run.CONFIG)
    if not os.path.isfile(path):
        return None
    info_path = os.path.join(workdir, trained_run.RUN_INFO)
    return (trained_run.read_json(path), trained_run.read_json(info_path) if os.path.isfile(info_path) else {})


def _next_steps(workdir: str) -> str:
    return (
        f"Next: python -m vmp_jax.visualize VIDEO --workdir {workdir} --out motion.png  (what the motion prompt sees)\n"
        f"      python -m vmp_jax.export --workdir {workdir} --out {workdir}_export   (then python -m vmp_jax.predict "
        f"--export {workdir}_export VIDEO)"
    )
