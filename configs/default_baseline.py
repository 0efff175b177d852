"""The embedded default without VMP (the baseline): the same X3D-XXS backbone classifies the raw clips.

    python train.py --config configs/default_baseline.py --workdir runs/default_baseline

Measured on the 2-core development CPU (2026-11-25, nothing else running): 2 min 14 s wall; eval top-1 63.1% /
97.5% / 98.0% at steps 300 / 600 / 900 (with VMP: 78.9% / 97.3% / 98.8%, see configs/default.py).
"""

from configs import default


def get_config():
    config = default.get_config()
    config.model.use_vmp = False
    config.vmp_lambda = 0.0
    return config
