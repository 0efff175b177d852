"""The TimeSformer MPII Cooking 2 recipe without VMP: the reference's baseline (`configs/MPII/baseline.yaml`),
8 raw frames 32 apart into the same TimeSformer-Base, everything else as configs/timesformer_mpii_cooking2.py.

    python train.py --config configs/timesformer_mpii_cooking2_baseline.py \
      --workdir runs/timesformer_mpii_cooking2_baseline --config.init_checkpoint=TimeSformer_divST_8x32_224_K600.pyth \
      --config.data.train_manifest=manifests/mpii_cooking2_official/train.csv \
      --config.data.eval_manifest=manifests/mpii_cooking2_official/test.csv \
      --config.data.class_names=manifests/mpii_cooking2_official/classes.txt --config.data.video_root=/data/mpii

Runtime: not measured here (no data set or GPU on the development machine).
"""

from configs import timesformer_mpii_cooking2


def get_config():
    config = timesformer_mpii_cooking2.get_config()
    config.model.use_vmp = False
    return config
