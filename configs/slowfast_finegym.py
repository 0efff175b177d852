"""SlowFast 8x8 R50 + VMP on FineGym, Gym99 or Gym288, fine-tuned from a Kinetics-400 checkpoint.

The config argument is the SPLIT: 'gym99' (default) or 'gym288'. The checkpoint is PyTorchVideo's
`SLOWFAST_8x8_R50.pyth` or a PySlowFast `.pyth` (e.g. its `checkpoint_epoch_00196.pyth`); key names are auto-detected.
See the README's SlowFast section for PySlowFast's Caffe2 `.pkl` files.

    python -m vmp_jax.data.splits gym99 --annotations=finegym/ --out=manifests/gym99
    python train.py --config configs/slowfast_finegym.py:gym99 --workdir runs/slowfast_gym99 \
      --config.init_checkpoint=SLOWFAST_8x8_R50.pyth --config.data.train_manifest=manifests/gym99/train.csv \
      --config.data.eval_manifest=manifests/gym99/test.csv --config.data.class_names=manifests/gym99/classes.txt \
      --config.data.video_root=/data/finegym/clips
    python train.py --config configs/slowfast_finegym.py:gym288 --workdir runs/slowfast_gym288 \
      --config.init_checkpoint=SLOWFAST_8x8_R50.pyth ...              # the same data flags, with manifests/gym288

Runtime: 25 epochs of Gym99's ~20k training clips of 33 frames at 224²; on one accelerator, a multi-day job (not
measured here: no data set or GPU on the development machine).
"""

from configs import common
from configs.arguments import config_argument

NUM_CLASSES = {"gym99": 99, "gym288": 288}


def get_config(arg="gym99"):
    (split,) = config_argument(arg, {"SPLIT": tuple(NUM_CLASSES)})
    config = common.base_config()
    config.num_frames = 32  # fast-pathway frames (8 slow ones at alpha 4); one extra frame for the motion prompt
    config.batch_size = 16
    config.eval_batch_size = 16
    config.num_epochs = 25.0
    config.num_train_steps = 0  # 0: num_epochs decides
    config.vmp_lambda = 1.0
    config.log_every_steps = 50
    config.eval_every_steps = 2000
    config.checkpoint_every_steps = 1000

    # PySlowFast's SLOWFAST_8x8_R50.yaml.
    config.model.backbone = "slowfast"
    config.model.slowfast.depth = 50
    config.model.slowfast.alpha = 4
    config.model.slowfast.beta_inv = 8
    config.model.slowfast.fusion_kernel = 7
    config.model.slowfast.dropout_rate = 0.5
    config.model.num_classes = NUM_CLASSES[split]
    config.model.dtype = "bfloat16"

    # The X3D recipes' fine-tuning: SGD, momentum 0.9, weight decay 1e-4, lr 0.005 x 1 / 0.1 / 0.01 from epochs
    # 0 / 11 / 14, 25 epochs.
    config.optimizer.name = "sgd"
    config.optimizer.momentum = 0.9
    config.optimizer.weight_decay = 1e-4
    config.schedule.name = "steps"
    config.schedule.base_lr = 0.005
    config.schedule.boundaries_epochs = (11.0, 14.0)
    config.schedule.relative_rates = (1.0, 0.1, 0.01)

    # SlowFast 8x8's inputs: frames 2 apart at 30 fps, crop 224 from short sides 256-320, test short side 256.
    config.data.source = "video_manifest"
    config.data.target_fps = 30.0
    config.data.sampling_rate = 2
    config.data.crop_size = 224
    config.data.train_scale = (256, 320)
    config.data.eval_short_side = 256
    config.data.eval_num_clips = 10  # multi-view test: 10 clips x 3 crops per video
    config.data.eval_num_crops = 3
    return config
