"""X3D-M + VMP on FineGym, Gym99 (default) or Gym288, fine-tuned from a Kinetics-400 checkpoint.

    python -m vmp_jax.data.splits gym99 --annotations=finegym/ --out=manifests/gym99
    python train.py --config configs/x3d_m_finegym.py:gym99 --workdir runs/x3d_m_gym99 \
      --config.init_checkpoint=X3D_M.pyth --config.data.train_manifest=manifests/gym99/train.csv \
      --config.data.eval_manifest=manifests/gym99/test.csv --config.data.class_names=manifests/gym99/classes.txt \
      --config.data.video_root=/data/finegym/clips

Runtime: 25 epochs of Gym99's ~20k training clips; on one accelerator, a day-scale job (not measured here:
no data set or GPU on the development machine). See configs/recipes.py for where each number comes from.
"""

from configs import recipes

NUM_CLASSES = {"gym99": 99, "gym288": 288}


def get_config(arg="gym99"):
    if arg not in NUM_CLASSES:
        raise ValueError(f"config argument {arg!r}: expected one of {sorted(NUM_CLASSES)}")
    return recipes.x3d_recipe("m", NUM_CLASSES[arg], batch_size=16)
