"""The tiny training run the tests share: the `tiny` backbone on small procedural clips, compiling in seconds."""

import jax
import optax

from configs import common
from vmp_jax.data import builders as data_builders
from vmp_jax.models import factory
from vmp_jax.training import optim, steps
from vmp_jax.training.mesh import AXIS, make_mesh


def tiny_config(**overrides):
    """The tiny run as a config; `overrides` map dotted keys to values (`tiny_config(**{"data.num_workers": 0})`)."""
    c = common.base_config()
    c.model.backbone = "tiny"
    c.num_frames = 4
    c.batch_size = 8
    c.eval_batch_size = 8
    c.num_train_steps = 6
    c.log_every_steps = 2
    c.eval_every_steps = 0
    c.checkpoint_every_steps = 3
    c.progress_bar = False
    c.data.procedural.height = c.data.procedural.width = 32
    c.data.procedural.num_train = 64
    c.data.procedural.num_eval = 16
    c.schedule.name = "constant"
    c.schedule.base_lr = 0.05
    for key, value in overrides.items():
        target = c
        *path, last = key.split(".")
        for part in path:
            target = target[part]
        target[last] = value
    return c


def setup(config, num_devices):
    """(mesh, model, tx, schedule, state, a global batch) for `config` on the first `num_devices` devices."""
    mesh = make_mesh(jax.devices()[:num_devices])
    data = data_builders.make_datasets(
        config.data,
        num_frames=config.num_frames + 1,
        global_batch_size=config.batch_size,
        eval_batch_size=config.eval_batch_size,
        seed=config.seed,
    )
    model = factory.build_model(config.model, data.num_classes, bn_axis_name=AXIS)
    schedule = optax.constant_schedule(config.schedule.base_lr)
    shape = (1, config.num_frames + 1, 32, 32, 3)
    abstract = jax.eval_shape(lambda r: factory.init_variables(model, r, shape), jax.random.key(0))
    tx = optim.make_optimizer("sgd", schedule, abstract["params"], momentum=0.9, weight_decay=1e-4)
    state = steps.initial_state(model, tx, jax.random.key(0), shape, mesh)
    batch = next(iter(data.train))
    return mesh, model, tx, schedule, state, batch
