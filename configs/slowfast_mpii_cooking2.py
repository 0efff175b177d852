"""SlowFast 8x8 R50 + VMP on MPII Cooking 2 (67 fine-grained activity classes, the reference code's single-label
setting), fine-tuned from a Kinetics-400 checkpoint (PyTorchVideo or PySlowFast key names, auto-detected).

    python -m vmp_jax.data.splits mpii_cooking2 --annotations=detectionGroundtruth.csv --classes=classes67.txt \
      --test_subjects=8,10,16,17,18,19,20 --out=manifests/mpii_cooking2
    python train.py --config configs/slowfast_mpii_cooking2.py --workdir runs/slowfast_mpii_cooking2 \
      --config.init_checkpoint=SLOWFAST_8x8_R50.pyth --config.data.train_manifest=manifests/mpii_cooking2/train.csv \
      --config.data.eval_manifest=manifests/mpii_cooking2/test.csv \
      --config.data.class_names=manifests/mpii_cooking2/classes.txt --config.data.video_root=/data/mpii_cooking2

Runtime: not measured here (no data set or GPU on the development machine). See configs/recipes.py.
"""

from configs import recipes

NUM_CLASSES = 67


def get_config():
    return recipes.slowfast_recipe(NUM_CLASSES)
