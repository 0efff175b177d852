"""The embedded default without VMP (the baseline): the same `tiny` backbone classifies the raw clips.

    python train.py --config configs/default_baseline.py --workdir runs/default_baseline
"""

from configs import default


def get_config():
    config = default.get_config()
    config.model.use_vmp = False
    config.vmp_lambda = 0.0
    return config
