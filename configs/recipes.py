"""The paper's fine-tuning recipe, shared by the real-data configs (X3D-S/M + VMP on FineGym, MPII Cooking 2).

From the reference implementation where it applies: SGD with momentum 0.9, weight decay 1e-4, base learning rate
0.005, the rate x0.1 at epochs 11 and 14 (PySlowFast's steps_with_relative_lrs), 25 epochs, one extra frame for
the motion prompt, multi-view test with 3 spatial crops. Frames, sampling rate, crop and scales are X3D's own
(PySlowFast X3D configs). The backbone starts from a Kinetics-400 X3D checkpoint given as `init_checkpoint`.
"""

from collections.abc import Sequence

import ml_collections

from configs import common

# variant -> (T, sampling rate at 30 fps, crop, train short-side range, test short side)
X3D_INPUTS = {
    "s": (13, 6, 160, (182, 228), 182),
    "m": (16, 5, 224, (256, 320), 256),
}

# variant -> global batch size (the reference's, for X3D-S and X3D-M)
BATCH_SIZES = {"s": 32, "m": 16}


def config_argument(arg: str, fields: dict[str, Sequence[str]]) -> tuple[str, ...]:
    """Splits a config argument 'A,B' (`--config FILE.py:A,B`) into one value per field, each checked against its
    choices; trailing fields left out take their first choice. ValueError names the field and its choices."""
    values = arg.split(",") if arg else []
    form = ",".join(fields)
    if len(values) > len(fields):
        raise ValueError(f"config argument {arg!r}: expected {form}, got {len(values)} values")
    for value, (name, choices) in zip(values, fields.items()):
        if value not in choices:
            raise ValueError(
                f"config argument {arg!r}: {name} {value!r} is not one of {tuple(choices)} "
                f"(expected {form}, e.g. {','.join(c[0] for c in fields.values())!r})"
            )
    return tuple(values) + tuple(choices[0] for choices in list(fields.values())[len(values) :])


def x3d_recipe(variant: str, num_classes: int, batch_size: int | None = None) -> ml_collections.ConfigDict:
    """The recipe for X3D `variant` ('s' or 'm'); batch_size None: BATCH_SIZES[variant]."""
    batch_size = BATCH_SIZES[variant] if batch_size is None else batch_size
    config = common.base_config()
    num_frames, rate, crop, train_scale, test_side = X3D_INPUTS[variant]
    config.num_frames = num_frames
    config.batch_size = batch_size
    config.eval_batch_size = batch_size
    config.num_epochs = 25.0
    config.num_train_steps = 0
    config.vmp_lambda = 1.0
    config.log_every_steps = 50
    config.eval_every_steps = 2000
    config.checkpoint_every_steps = 1000

    config.model.backbone = "x3d"
    config.model.x3d.variant = variant
    config.model.x3d.dropout_rate = 0.5
    config.model.num_classes = num_classes
    config.model.dtype = "bfloat16"

    config.optimizer.name = "sgd"
    config.optimizer.momentum = 0.9
    config.optimizer.weight_decay = 1e-4
    config.schedule.name = "steps"
    config.schedule.base_lr = 0.005
    config.schedule.boundaries_epochs = (11.0, 14.0)
    config.schedule.relative_rates = (1.0, 0.1, 0.01)

    config.data.source = "video_manifest"
    config.data.target_fps = 30.0
    config.data.sampling_rate = rate
    config.data.crop_size = crop
    config.data.train_scale = train_scale
    config.data.eval_short_side = test_side
    config.data.eval_num_clips = 10
    config.data.eval_num_crops = 3
    return config


# SlowFast 8x8 R50 (PySlowFast's SLOWFAST_8x8_R50.yaml): T = 32 fast frames 2 apart at 30 fps (8 slow ones),
# crop 224, train short side 256-320, test short side 256.
SLOWFAST_INPUTS = (32, 2, 224, (256, 320), 256)
SLOWFAST_BATCH_SIZE = 16


def slowfast_recipe(num_classes: int, batch_size: int | None = None) -> ml_collections.ConfigDict:
    """The recipe for SlowFast 8x8 R50 from Kinetics-400: the X3D recipes' optimiser, schedule and test views,
    SlowFast's own backbone and inputs; batch_size None: SLOWFAST_BATCH_SIZE."""
    config = x3d_recipe("m", num_classes, SLOWFAST_BATCH_SIZE if batch_size is None else batch_size)
    config.model.backbone = "slowfast"
    config.model.slowfast.update(depth=50, alpha=4, beta_inv=8, fusion_kernel=7, dropout_rate=0.5)
    num_frames, rate, crop, train_scale, test_side = SLOWFAST_INPUTS
    config.num_frames = num_frames
    config.data.sampling_rate = rate
    config.data.crop_size = crop
    config.data.train_scale = train_scale
    config.data.eval_short_side = test_side
    return config
