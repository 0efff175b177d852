"""X3D-S or X3D-M + VMP on FineGym, Gym99 or Gym288, fine-tuned from a Kinetics-400 checkpoint.

The config argument is VARIANT,SPLIT: VARIANT 's' (default) or 'm', SPLIT 'gym99' (default) or 'gym288'.

    python -m vmp_jax.data.splits gym99 --annotations=finegym/ --out=manifests/gym99
    python train.py --config configs/x3d_finegym.py:s,gym99 --workdir runs/x3d_s_gym99 \
      --config.init_checkpoint=X3D_S.pyth --config.data.train_manifest=manifests/gym99/train.csv \
      --config.data.eval_manifest=manifests/gym99/test.csv --config.data.class_names=manifests/gym99/classes.txt \
      --config.data.video_root=/data/finegym/clips
    python train.py --config configs/x3d_finegym.py:m,gym288 --workdir runs/x3d_m_gym288 \
      --config.init_checkpoint=X3D_M.pyth ...                        # the same data flags, with manifests/gym288

Runtime: 25 epochs of Gym99's ~20k training clips; on one accelerator, a day-scale job (not measured here:
no data set or GPU on the development machine).
"""

from configs import common
from configs.arguments import config_argument

NUM_CLASSES = {"gym99": 99, "gym288": 288}

# X3D's own inputs (PySlowFast's X3D_S / X3D_M configs: frames, sampling rate at 30 fps, crop, train short-side
# range, test short side) and the global batch of the reference (X3D-S 32, X3D-M 16).
VARIANTS = {
    "s": dict(num_frames=13, sampling_rate=6, crop_size=160, train_scale=(182, 228), eval_short_side=182, batch=32),
    "m": dict(num_frames=16, sampling_rate=5, crop_size=224, train_scale=(256, 320), eval_short_side=256, batch=16),
}


def get_config(arg="s,gym99"):
    variant, split = config_argument(arg, {"VARIANT": tuple(VARIANTS), "SPLIT": tuple(NUM_CLASSES)})
    v = VARIANTS[variant]
    config = common.base_config()
    config.num_frames = v["num_frames"]  # T prompts; one extra frame is read for the motion prompt
    config.batch_size = v["batch"]
    config.eval_batch_size = v["batch"]
    config.num_epochs = 25.0
    config.num_train_steps = 0  # 0: num_epochs decides
    config.vmp_lambda = 1.0
    config.log_every_steps = 50
    config.eval_every_steps = 2000
    config.checkpoint_every_steps = 1000

    config.model.backbone = "x3d"
    config.model.x3d.variant = variant
    config.model.x3d.dropout_rate = 0.5
    config.model.num_classes = NUM_CLASSES[split]
    config.model.dtype = "bfloat16"

    # The reference's fine-tuning: SGD, momentum 0.9, weight decay 1e-4, lr 0.005 x 1 / 0.1 / 0.01 from epochs
    # 0 / 11 / 14 (PySlowFast's steps_with_relative_lrs), 25 epochs.
    config.optimizer.name = "sgd"
    config.optimizer.momentum = 0.9
    config.optimizer.weight_decay = 1e-4
    config.schedule.name = "steps"
    config.schedule.base_lr = 0.005
    config.schedule.boundaries_epochs = (11.0, 14.0)
    config.schedule.relative_rates = (1.0, 0.1, 0.01)

    config.data.source = "video_manifest"
    config.data.target_fps = 30.0
    config.data.sampling_rate = v["sampling_rate"]
    config.data.crop_size = v["crop_size"]
    config.data.train_scale = v["train_scale"]
    config.data.eval_short_side = v["eval_short_side"]
    config.data.eval_num_clips = 10  # multi-view test: 10 clips x 3 crops per video
    config.data.eval_num_crops = 3
    return config
