"""X3D-S or X3D-M + VMP on MPII Cooking 2 (67 fine-grained activity classes, the reference code's single-label
setting), fine-tuned from a Kinetics-400 checkpoint. The config argument is the VARIANT: 's' (default) or 'm'.

    python -m vmp_jax.data.splits mpii_cooking2 --annotations=detectionGroundtruth.csv --classes=classes67.txt \
      --test_subjects=8,10,16,17,18,19,20 --out=manifests/mpii_cooking2
    python train.py --config configs/x3d_mpii_cooking2.py:s --workdir runs/x3d_s_mpii_cooking2 \
      --config.init_checkpoint=X3D_S.pyth --config.data.train_manifest=manifests/mpii_cooking2/train.csv \
      --config.data.eval_manifest=manifests/mpii_cooking2/test.csv \
      --config.data.class_names=manifests/mpii_cooking2/classes.txt --config.data.video_root=/data/mpii_cooking2
    python train.py --config configs/x3d_mpii_cooking2.py:m --workdir runs/x3d_m_mpii_cooking2 \
      --config.init_checkpoint=X3D_M.pyth ...                        # the same data flags

Runtime: not measured here (no data set or GPU on the development machine). See configs/recipes.py.
"""

from configs import recipes

NUM_CLASSES = 67


def get_config(arg="s"):
    (variant,) = recipes.config_argument(arg, {"VARIANT": tuple(recipes.BATCH_SIZES)})
    return recipes.x3d_recipe(variant, NUM_CLASSES)
