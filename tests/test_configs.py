"""Every shipped config loads and passes validation; unknown keys are refused by train.py's flags."""

import glob
import importlib
import os
import subprocess
import sys

import pytest

from vmp_jax import ablate, config_checks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join(ROOT, "configs", "*.py"))
                 if not os.path.basename(p).startswith("_") and os.path.basename(p) not in ("common.py", "recipes.py"))


@pytest.mark.parametrize("name", CONFIGS)
def test_config_loads_validates_and_documents_its_command(name):
    module = importlib.import_module(f"configs.{name}")
    config = module.get_config()
    assert f"configs/{name}.py" in module.__doc__ or name == "default"
    if "settings" in config:  # an ablation: every run of the sweep is a valid training config
        settings = ablate.settings_from_config(config)
        configs = ablate.sweep_configs(config.base, settings, config.seeds, num_devices=8)
        assert len(configs) == len(settings) * len(config.seeds)
        assert "python -m vmp_jax.ablate" in module.__doc__
        return
    config_checks.validate(config, num_devices=8)
    assert "python train.py" in module.__doc__


def test_finegym_configs_take_the_split_as_argument():
    module = importlib.import_module("configs.x3d_s_finegym")
    assert module.get_config("gym288").model.num_classes == 288
    with pytest.raises(ValueError, match=r"config argument 'gym101'"):
        module.get_config("gym101")


def test_recipe_follows_the_reference_schedule():
    config = importlib.import_module("configs.x3d_m_mpii_cooking2").get_config()
    assert (config.schedule.name, config.schedule.base_lr) == ("steps", 0.005)
    assert tuple(config.schedule.boundaries_epochs) == (11.0, 14.0) and config.num_epochs == 25
    assert (config.optimizer.momentum, config.optimizer.weight_decay) == (0.9, 1e-4)
    assert config.data.eval_num_crops == 3 and config.model.use_vmp


def test_unknown_config_key_is_refused_before_training(tmp_path):
    proc = subprocess.run([sys.executable, "train.py", "--workdir", str(tmp_path), "--config.vmp_lamda=0.5"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "vmp_lamda" in proc.stderr
    assert not os.path.exists(tmp_path / "checkpoints")


def test_cpu_device_count_divides_the_batches():
    from vmp_jax.distributed import cpu_device_count

    assert cpu_device_count(2, (16, 32)) == 2
    assert cpu_device_count(6, (16, 32)) == 4
    assert cpu_device_count(8, (12, 18)) == 6
    assert cpu_device_count(1, (16,)) == 1
