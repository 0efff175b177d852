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
no data set or GPU on the development machine). See configs/recipes.py for where each number comes from.
"""

from configs import recipes

NUM_CLASSES = {"gym99": 99, "gym288": 288}


def get_config(arg="s,gym99"):
    variant, split = recipes.config_argument(arg, {"VARIANT": tuple(recipes.BATCH_SIZES), "SPLIT": tuple(NUM_CLASSES)})
    return recipes.x3d_recipe(variant, NUM_CLASSES[split])
