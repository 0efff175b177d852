"""The embedded default without VMP (the baseline): the same X3D-XXS backbone classifies the raw clips.

    python train.py --config configs/default_baseline.py --workdir runs/default_baseline

Runtime on a 2-core machine of our kind: 2 min 14 s - 2 min 31 s wall; eval top-1 59.2-66.2% / 89.3-97.5% /
96.5-98.0% at steps 300 / 600 / 900 over the CPU types of the README's "What the figures depend on" (with VMP:
53.7-78.9% / 97.3-98.6% / 98.4-99.0%, see configs/default.py).
"""

from configs import default


def get_config():
    config = default.get_config()
    config.model.use_vmp = False
    config.vmp_lambda = 0.0
    return config
