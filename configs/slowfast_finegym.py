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
measured here: no data set or GPU on the development machine). See configs/recipes.py for each number's source.
"""

from configs import recipes

NUM_CLASSES = {"gym99": 99, "gym288": 288}


def get_config(arg="gym99"):
    (split,) = recipes.config_argument(arg, {"SPLIT": tuple(NUM_CLASSES)})
    return recipes.slowfast_recipe(NUM_CLASSES[split])
