"""The embedded default: VMP + X3D-XS on procedural motion clips (class = direction of motion), CPU-sized.

    python train.py                                   # = --config configs/default.py --workdir runs/default

Runtime and result on the 2-core development CPU (jax 0.10.2): see the README's "Main job" section, where the
measured time and eval accuracy of this config and of configs/default_baseline.py are recorded.
"""

from configs import common


def get_config():
    config = common.base_config()
    config.num_frames = 8                 # T prompts; the loader reads T+1 frames when VMP is on
    config.batch_size = 16
    config.eval_batch_size = 32
    config.num_train_steps = 600
    config.log_every_steps = 25
    config.eval_every_steps = 200
    config.checkpoint_every_steps = 100
    config.vmp_lambda = 1.0

    config.model.x3d.variant = "xs"
    config.model.x3d.dropout_rate = 0.0

    config.data.source = "procedural"
    config.data.procedural.height = 64
    config.data.procedural.width = 64
    config.data.procedural.num_classes = 4
    config.data.procedural.num_train = 9600
    config.data.procedural.num_eval = 512

    config.optimizer.name = "sgd"
    config.optimizer.momentum = 0.9
    config.optimizer.nesterov = True
    config.optimizer.weight_decay = 5e-5
    config.schedule.name = "cosine"
    config.schedule.base_lr = 0.1
    config.schedule.warmup_epochs = 0.05
    return config
