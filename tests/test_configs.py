"""Every shipped config loads and passes validation; unknown keys are refused by train.py's flags."""

import glob
import importlib
import os
import re
import subprocess
import sys

import pytest

from vmp_jax.ablate import settings as ablate_settings
from vmp_jax.ablate import sweep
from vmp_jax.training import validation

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(
    os.path.splitext(os.path.basename(p))[0]
    for p in glob.glob(os.path.join(ROOT, "configs", "*.py"))
    if not os.path.basename(p).startswith("_") and os.path.basename(p) not in ("common.py", "arguments.py")
)


@pytest.mark.parametrize("name", CONFIGS)
def test_config_loads_validates_and_documents_its_command(name):
    module = importlib.import_module(f"configs.{name}")
    config = module.get_config()
    assert f"configs/{name}.py" in module.__doc__ or name == "default"
    if "settings" in config:  # an ablation: every run of the sweep is a valid training config
        settings = ablate_settings.settings_from_config(config)
        configs = sweep.sweep_configs(config.base, settings, config.seeds, num_devices=8)
        assert len(configs) == len(settings) * len(config.seeds)
        assert "python -m vmp_jax.ablate" in module.__doc__
        return
    validation.validate(config, num_devices=8)
    assert "python train.py" in module.__doc__


def test_base_config_lists_every_registered_backbones_fields_with_the_modules_defaults():
    from configs import common
    from vmp_jax.models import registry

    model = common.base_config().model
    for name in registry.names():
        assert model[name].to_dict() == registry.entry(name).defaults, name


def test_loading_any_config_imports_no_model_code():
    code = (
        "import importlib, sys\n"
        f"for name in {CONFIGS!r}:\n"
        "    importlib.import_module('configs.' + name).get_config()\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'flax' or m.startswith('vmp_jax.models'))\n"
        "assert not loaded, loaded\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_finegym_configs_take_the_split_as_argument():
    module = importlib.import_module("configs.x3d_finegym")
    assert module.get_config("s,gym288").model.num_classes == 288
    with pytest.raises(ValueError, match=r"config argument 's,gym101'"):
        module.get_config("s,gym101")


@pytest.mark.parametrize(
    "name, arg, variant, num_classes, batch_size, num_frames",
    [
        ("x3d_finegym", None, "s", 99, 32, 13),  # the default: s,gym99
        ("x3d_finegym", "s,gym99", "s", 99, 32, 13),
        ("x3d_finegym", "s,gym288", "s", 288, 32, 13),
        ("x3d_finegym", "m,gym288", "m", 288, 16, 16),
        ("x3d_finegym", "m", "m", 99, 16, 16),  # SPLIT left out: gym99
        ("x3d_mpii_cooking2", None, "s", 67, 32, 13),
        ("x3d_mpii_cooking2", "m", "m", 67, 16, 16),
    ],
)
def test_recipe_configs_take_the_variant_as_argument(name, arg, variant, num_classes, batch_size, num_frames):
    module = importlib.import_module(f"configs.{name}")
    config = module.get_config() if arg is None else module.get_config(arg)
    assert (config.model.x3d.variant, config.model.num_classes) == (variant, num_classes)
    assert (config.batch_size, config.num_frames) == (batch_size, num_frames)
    assert config.data.crop_size == {"s": 160, "m": 224}[variant]
    validation.validate(config, num_devices=8)


@pytest.mark.parametrize(
    "name, arg, message",
    [
        ("x3d_finegym", "xl,gym99", r"config argument 'xl,gym99': VARIANT 'xl' is not one of \('s', 'm'\)"),
        (
            "x3d_finegym",
            "gym288",
            r"config argument 'gym288': VARIANT 'gym288' is not one of \('s', 'm'\) "
            r"\(expected VARIANT,SPLIT, e.g. 's,gym99'\)",
        ),
        ("x3d_finegym", "m,gym101", r"config argument 'm,gym101': SPLIT 'gym101' is not one of \('gym99', 'gym288'\)"),
        ("x3d_finegym", "s,gym99,x", r"config argument 's,gym99,x': expected VARIANT,SPLIT, got 3 values"),
        ("x3d_mpii_cooking2", "l", r"config argument 'l': VARIANT 'l' is not one of \('s', 'm'\)"),
        (
            "ablation_init_x3d_s",
            "kinetics",
            r"config argument 'kinetics': DATASET 'kinetics' is not one of \('gym99', "
            r"'gym288', 'mpii_cooking2'\)",
        ),
    ],
)
def test_bad_config_arguments_name_the_argument_and_the_choices(name, arg, message):
    with pytest.raises(ValueError, match=message):
        importlib.import_module(f"configs.{name}").get_config(arg)


def test_every_config_command_in_the_readme_and_the_configs_loads():
    texts = [open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()]
    texts += [importlib.import_module(f"configs.{name}").__doc__ for name in CONFIGS]
    uses = {m for text in texts for m in re.findall(r"configs/([a-z0-9_]+)\.py(?::([a-z0-9_,]+))?", text)}
    assert ("x3d_finegym", "m,gym288") in uses and ("x3d_mpii_cooking2", "m") in uses
    for name, arg in sorted(uses):
        module = importlib.import_module(f"configs.{name}")
        if name in ("common", "arguments"):  # shared by the configs, not configs themselves
            continue
        config = module.get_config(arg) if arg else module.get_config()
        assert "settings" in config or config.model.num_classes >= 0


def test_recipe_follows_the_reference_schedule():
    config = importlib.import_module("configs.x3d_mpii_cooking2").get_config("m")
    assert (config.schedule.name, config.schedule.base_lr) == ("steps", 0.005)
    assert tuple(config.schedule.boundaries_epochs) == (11.0, 14.0) and config.num_epochs == 25
    assert (config.optimizer.momentum, config.optimizer.weight_decay) == (0.9, 1e-4)
    assert config.data.eval_num_crops == 3 and config.model.use_vmp


def test_unknown_config_key_is_refused_before_training(tmp_path):
    proc = subprocess.run(
        [sys.executable, "train.py", "--workdir", str(tmp_path), "--config.vmp_lamda=0.5"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "vmp_lamda" in proc.stderr
    # One line naming the key and the likely one, exit status 2, no traceback.
    assert proc.returncode == 2 and proc.stderr.splitlines() == [
        "error: --config.vmp_lamda: the config has no key 'vmp_lamda'; did you mean \"vmp_lambda\" instead of "
        '"vmp_lamda"? (see --help)'
    ]
    assert not os.path.exists(tmp_path / "checkpoints")


def test_cpu_device_count_divides_the_batches():
    from vmp_jax.training.distributed import cpu_device_count

    assert cpu_device_count(2, (16, 32)) == 2
    assert cpu_device_count(6, (16, 32)) == 4
    assert cpu_device_count(8, (12, 18)) == 6
    assert cpu_device_count(1, (16,)) == 1
