"""The initialisation / parametrisation / λ / power-normalisation ablation on real data: X3D-S fine-tuned with the
paper's recipe on FineGym (gym99, gym288) or MPII Cooking 2 (mpii_cooking2), one training run per setting and seed.

    python -m vmp_jax.ablate --config configs/ablation_init_x3d_s.py:gym99 --workdir runs/ablation_gym99 \
      --config.base.init_checkpoint=X3D_S.pyth --config.base.data.train_manifest=manifests/gym99/train.csv \
      --config.base.data.eval_manifest=manifests/gym99/test.csv \
      --config.base.data.class_names=manifests/gym99/classes.txt --config.base.data.video_root=/data/finegym/clips

The settings are those of configs/ablation_init.py (the procedural-data version, which runs on a CPU); the base
is configs/x3d_finegym.py:s,gym99 (or s,gym288) or configs/x3d_mpii_cooking2.py:s (see them for preparing the
manifests). Runtime: 14 settings x 3 seeds full fine-tuning runs; not measured here (no data set or accelerator
on the development machine). Pass --config.seeds=0, for one seed, or edit `settings` for a subset.
"""

import ml_collections

from configs import ablation_init, x3d_finegym, x3d_mpii_cooking2
from configs.arguments import config_argument

DATASETS = ("gym99", "gym288", "mpii_cooking2")


def get_config(arg="gym99"):
    (dataset,) = config_argument(arg, {"DATASET": DATASETS})
    config = ml_collections.ConfigDict()
    config.base = (
        x3d_mpii_cooking2.get_config("s") if dataset == "mpii_cooking2" else x3d_finegym.get_config(f"s,{dataset}")
    )
    config.settings = ablation_init.settings()
    config.seeds = (0, 1, 2)
    return config
