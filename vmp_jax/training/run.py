"""A training run from its config: data, model, optimiser and state, resumed from the workdir's checkpoints, then
the loop (`vmp_jax.training.loop`) with evaluations and checkpoints. `train.py` calls `train_and_evaluate`.

The config stops here: everything this module calls takes plain arguments.
"""

from __future__ import annotations

import dataclasses
import os
import signal
from typing import Any

import jax
import ml_collections
import optax
from absl import logging

from vmp_jax.data import builders as data_builders
from vmp_jax.data import pipeline as data_pipeline
from vmp_jax.models import factory
from vmp_jax.training import checkpointing, evaluation, optim, profiling, resume, run_dir, validation
from vmp_jax.training.loop import Cadence, InterruptibleIterator, StopFlag, train_loop
from vmp_jax.training.mesh import AXIS, global_batch, make_mesh
from vmp_jax.training.metric_writers import MetricWriter
from vmp_jax.training.steps import TrainState, initial_state, make_eval_step, make_train_step


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


def make_optimizer(config: ml_collections.ConfigDict, schedule: optax.Schedule, params: Any):
    """The optax transformation of `config.optimizer`; `params` (abstract is enough) gives the decay mask."""
    o = config.optimizer
    return optim.make_optimizer(
        o.name,
        schedule,
        params,
        momentum=o.momentum,
        nesterov=o.nesterov,
        weight_decay=o.weight_decay,
        decay_norm_and_bias=o.decay_norm_and_bias,
        decay_vmp=o.decay_vmp,
        clip_grad_norm=o.clip_grad_norm or None,
    )


def model_and_optimizer(config: ml_collections.ConfigDict, num_classes: int, input_shape, schedule: optax.Schedule):
    """(model, optax transformation) of `config` for clips of `input_shape` (1, T+1, H, W, 3); BatchNorm syncs over
    the mesh's AXIS, narrowed by `model.bn_sync`. The optimiser's decay mask comes from abstract parameters."""
    model = factory.build_model(config.model, num_classes, bn_axis_name=AXIS)
    abstract = jax.eval_shape(lambda r: factory.init_variables(model, r, input_shape), jax.random.key(0))
    return model, make_optimizer(config, schedule, abstract["params"])


@dataclasses.dataclass
class Setup:
    """What a run is made of, before its state is restored: data, model, optimiser, schedule and steps."""

    data: data_builders.DataSplits
    model: Any
    tx: optax.GradientTransformation
    schedule: optax.Schedule
    total_steps: int
    num_frames: int  # frames per clip the model takes
    state: TrainState  # fresh (or from init_checkpoint), replicated over the mesh


def build(config: ml_collections.ConfigDict, mesh, fresh: bool = True) -> Setup:
    """The run `config` describes on `mesh`; `fresh`: this run starts from step 0 (so `init_checkpoint` applies)."""
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
    validation.validate_num_classes(config, data.num_classes)
    factory.validate_backbone(config.model, config.num_frames, data.frame_size)
    steps_per_epoch, total_steps = run_length(config, data.num_train_examples)
    schedule = make_schedule(config, steps_per_epoch, total_steps)

    init_rng = jax.random.split(jax.random.key(config.seed))[0]
    input_shape = (1, num_frames, *data.frame_size, 3)
    model, tx = model_and_optimizer(config, data.num_classes, input_shape, schedule)
    variables = None
    if config.init_checkpoint and fresh:  # a resumed run takes its backbone from its checkpoint
        variables = _pretrained(config, model, init_rng, input_shape)
    state = initial_state(model, tx, init_rng, input_shape, mesh, variables)
    return Setup(data, model, tx, schedule, total_steps, num_frames, state)


def _pretrained(config: ml_collections.ConfigDict, model, init_rng, input_shape) -> dict:
    from vmp_jax import convert  # torch-side code only when a checkpoint is given

    random_init = jax.jit(lambda r: factory.init_variables(model, r, input_shape))(init_rng)
    variables = convert.load_pretrained_backbone(
        jax.device_get(random_init),
        config.init_checkpoint,
        config.model.backbone,
        factory.backbone_kwargs(config.model),
    )
    if jax.process_index() == 0:
        print(f"Backbone initialised from {config.init_checkpoint}", flush=True)
    return variables


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str, mesh: jax.sharding.Mesh | None = None
) -> TrainState:
    """Trains `config` into `workdir`, resuming from its latest checkpoint if there is one; returns the state.

    mesh: default `make_mesh()` (every device of every process); any device order works.
    """
    validation.validate(config, num_devices=jax.device_count(), num_processes=jax.process_count())
    workdir = os.path.abspath(workdir)  # orbax needs absolute paths
    is_main = jax.process_index() == 0
    # A rerun on a workdir with checkpoints continues that run: refuse, before anything is rewritten, a config
    # its checkpoints cannot take; the run's files are replaced only once the state is restored.
    previous = run_dir.previous_run(workdir) if checkpointing.has_steps(run_dir.checkpoint_dir(workdir)) else None
    if previous is not None:
        changes = resume.resume_changes(previous[0], config, workdir)
        if changes and is_main:
            print("Resuming with changed keys (they extend or observe the run): " + "; ".join(changes), flush=True)

    mesh = make_mesh() if mesh is None else mesh
    setup = build(config, mesh, fresh=previous is None)
    data = setup.data
    checkpoints = checkpointing.Checkpoints(
        run_dir.checkpoint_dir(workdir), keep_last=config.keep_last, keep_best=config.keep_best, best_metric="top1"
    )
    per_process_batch = config.batch_size // jax.process_count()
    restored_step, state, train_iter = checkpoints.restore_latest(
        setup.state,
        iter(data.train),
        data_position=lambda step: data_pipeline.train_state_at(
            step * per_process_batch // data.clips_per_item, data.num_workers
        ),
    )
    setup.state = None  # the restored state replaces it (the fresh one's buffers may be donated)
    if restored_step is not None:
        logging.info("Resumed from %s at step %d", checkpoints.directory, restored_step)
    if is_main:
        _record_run(workdir, config, setup, restored_step, previous)
    start_step = int(jax.device_get(state.step))
    if start_step >= setup.total_steps:
        checkpoints.close()
        if is_main:
            print(
                f"The run in {workdir} already finished: step {start_step} of {setup.total_steps}, nothing to train "
                "(a larger --config.num_train_steps trains on).",
                flush=True,
            )
        return state
    state = _train(config, workdir, mesh, setup, state, start_step, train_iter, checkpoints, restored_step)
    if is_main and int(jax.device_get(state.step)) == setup.total_steps:
        print(
            f"Finished {setup.total_steps} steps in {workdir}:\n"
            f"  metrics      {os.path.join(workdir, run_dir.METRICS_FILE)} (TensorBoard: tensorboard --logdir "
            f"{os.path.join(workdir, run_dir.TENSORBOARD_DIR)})\n"
            f"  checkpoints  {checkpoints.directory} (steps {', '.join(map(str, checkpoints.all_steps()))})",
            flush=True,
        )
    return state


def _record_run(workdir: str, config, setup: Setup, restored_step: int | None, previous) -> None:
    """Writes the run's config.json and run_info.json (process 0, once the state is restored)."""
    os.makedirs(workdir, exist_ok=True)
    run_dir.write_config(workdir, config)
    data = setup.data
    run_dir.write_run_info(
        workdir, data.class_names, setup.num_frames, data.frame_size, setup.total_steps, num_devices=jax.device_count()
    )
    trained_on = previous[1].get("num_devices") if previous is not None else None
    if restored_step is not None and trained_on is not None and trained_on != jax.device_count():
        print(
            f"Resuming on {jax.device_count()} devices a run trained on {trained_on} up to step "
            f"{restored_step}: the global batch is the same, the sums are split differently (last-bit "
            "differences from an uninterrupted run).",
            flush=True,
        )


def _train(config, workdir, mesh, setup: Setup, state, start_step, train_iter, checkpoints, restored_step):
    """The loop from `start_step`, with SIGTERM/SIGINT turned into a clean stop; returns the last state."""
    step_rng = jax.random.split(jax.random.key(config.seed))[1]
    p_train_step = make_train_step(
        mesh, setup.model, setup.tx, config.vmp_lambda, setup.schedule, config.grad_accum_steps
    )
    p_eval_step = make_eval_step(mesh, setup.model)
    stop = StopFlag()
    batches = InterruptibleIterator(train_iter, stop, transfer=lambda batch: global_batch(mesh, batch))
    previous_handlers = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    total_steps = setup.total_steps
    writer = MetricWriter(
        workdir, total_steps, start_step, enabled=jax.process_index() == 0, progress_bar=config.progress_bar
    )
    if restored_step is not None:
        writer.message(f"Resumed from step {restored_step} ({checkpoints.directory}).")
    cadence = Cadence(total_steps, config.log_every_steps, config.eval_every_steps, config.checkpoint_every_steps)
    try:
        return train_loop(
            state,
            start_step,
            cadence,
            batches=batches,
            train_step=profiling.traced(
                lambda s, batch: p_train_step(s, batch, step_rng),
                profiling.parse_steps(config.profile_steps),
                os.path.join(workdir, run_dir.PROFILE_DIR),
                start_step,
            ),
            evaluate=lambda s, final: evaluation.evaluations(p_eval_step, s, setup.data, mesh, final),
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
