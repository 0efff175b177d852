"""The backbone seam: a backbone defined in this file alone (no BatchNorm, its own converter and validate hook)
trains, exports (with a PyTorch state dict through its converter) and predicts through the public entry points,
and leaves no registry entry behind."""

import os
import subprocess
import sys
import types

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import common
from vmp_jax import export
from vmp_jax.bundle import load_bundle, logits_fn
from vmp_jax.convert import torch_io
from vmp_jax.models import BACKBONES, registered_backbone
from vmp_jax.training import trained_run
from vmp_jax.training.metric_writers import read_metrics
from vmp_jax.training.run import train_and_evaluate

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAME = "throwaway_patch_net"


class PatchNet(nn.Module):
    """Patches -> linear embedding -> differences over time -> mean -> linear head. clips (B, T, H, W, 3)."""

    num_classes: int
    dtype: object = jnp.float32
    bn_axis_name: str | None = None
    patch: int = 8
    width: int = 6

    @nn.compact
    def __call__(self, clips, train: bool):
        p = self.patch
        x = nn.Conv(self.width, (1, p, p), strides=(1, p, p), padding="VALID", name="embed")(clips)
        x = jnp.concatenate([x.mean(axis=(1, 2, 3)), jnp.abs(jnp.diff(x, axis=1)).mean(axis=(1, 2, 3))], axis=-1)
        return nn.Dense(self.num_classes, name="head")(x).astype(jnp.float32)


def validate(fields, input_shape):
    _, height, width = input_shape
    if height % fields["patch"] or width % fields["patch"]:
        raise ValueError(
            f"config.model.{NAME}.patch={fields['patch']}: expected a divisor of the frame size {height}x{width}"
        )


def from_torch(state_dict, **fields):
    del fields
    return {
        "params": {
            "embed": {
                "kernel": torch_io.conv3d_from_torch(np.asarray(state_dict["patch_embed.weight"])),
                "bias": np.asarray(state_dict["patch_embed.bias"]),
            },
            "head": {
                "kernel": torch_io.linear_from_torch(np.asarray(state_dict["fc.weight"])),
                "bias": np.asarray(state_dict["fc.bias"]),
            },
        }
    }


def to_torch(variables, **fields):
    del fields
    p = variables["params"]
    return {
        "patch_embed.weight": torch_io.conv3d_to_torch(np.asarray(p["embed"]["kernel"])),
        "patch_embed.bias": np.asarray(p["embed"]["bias"]),
        "fc.weight": torch_io.linear_to_torch(np.asarray(p["head"]["kernel"])),
        "fc.bias": np.asarray(p["head"]["bias"]),
    }


CONVERTER = types.SimpleNamespace(
    KEY_FORMATS=("patchnet",), from_torch=from_torch, to_torch=to_torch, key_format=lambda **fields: "patchnet"
)


@pytest.fixture
def patchnet():
    with registered_backbone(
        NAME, PatchNet, validate=validate, converter=CONVERTER, head=("head",), uses_batchnorm=False
    ) as entry:
        yield entry
    assert NAME not in BACKBONES


def config_for(**overrides):
    c = common.base_config()
    c.model.backbone = NAME
    c.num_frames, c.batch_size, c.eval_batch_size = 3, 8, 8
    c.num_train_steps, c.log_every_steps, c.eval_every_steps, c.checkpoint_every_steps = 4, 2, 0, 2
    c.progress_bar = False
    c.data.procedural.height = c.data.procedural.width = 32
    c.data.procedural.num_train, c.data.procedural.num_eval = 64, 16
    c.schedule.name, c.schedule.base_lr = "constant", 0.05
    for key, value in overrides.items():
        c.model[NAME][key] = value
    return c


def test_a_backbone_from_one_file_trains_exports_and_predicts(patchnet, tmp_path):
    config = config_for(width=5)
    assert config.model[NAME].to_dict() == {"patch": 8, "width": 5}  # config keys from the module's fields
    workdir, out = str(tmp_path / "run"), str(tmp_path / "export")
    state = train_and_evaluate(config, workdir)

    assert state.batch_stats == {}  # no BatchNorm: the trainer needs no batch_stats
    assert state.params["backbone"]["embed"]["kernel"].shape == (1, 8, 8, 3, 5)
    steps = [row["step"] for row in read_metrics(workdir) if row["split"] == "train"]
    assert steps == [2, 4]
    run = trained_run.load_run(workdir)
    assert run.step == 4 and run.config.model.backbone == NAME

    written = export.export_run(workdir, out, log=lambda line: None)
    assert set(written) == {"bundle", "config", "run_info", "jax_export", "pytorch_state_dict"}
    torch = pytest.importorskip("torch")
    state_dict = torch.load(written["pytorch_state_dict"])
    assert sorted(state_dict) == ["fc.bias", "fc.weight", "patch_embed.bias", "patch_embed.weight", "vmp.m", "vmp.n"]
    # The converter's round trip gives back the trained parameters.
    back = from_torch({k: v.numpy() for k, v in state_dict.items()})
    jax.tree.map(np.testing.assert_array_equal, back["params"], jax.device_get(state.params["backbone"]))
    bundle = load_bundle(out)
    jax.tree.map(np.testing.assert_array_equal, bundle.variables["params"], jax.device_get(state.params))

    # The artifact alone predicts, in a fresh process where this backbone was never registered.
    clip = str(tmp_path / "clip.npy")
    np.save(clip, np.random.default_rng(0).integers(0, 256, (2, 4, 32, 32, 3), dtype=np.uint8))
    code = (
        "import sys, numpy as np; from vmp_jax import bundle; "
        "e = bundle.load_exported(sys.argv[1]); print(np.asarray(e.call(np.load(sys.argv[2]))).tolist())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, written["jax_export"], clip],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert result.returncode == 0, result.stderr
    got = np.asarray(eval(result.stdout))  # noqa: S307  (a list literal printed by the line above)
    want = logits_fn(run.model, run.variables)(np.load(clip))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_pretrained_checkpoint_through_the_converter_keeps_the_models_head(patchnet, tmp_path):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    checkpoint = {
        "patch_embed.weight": rng.normal(size=(6, 3, 1, 8, 8)),
        "patch_embed.bias": rng.normal(size=6),
        "fc.weight": rng.normal(size=(10, 12)),
        "fc.bias": rng.normal(size=10),
    }  # 10 classes, data 4
    path = str(tmp_path / "patchnet.pth")
    torch.save(
        {"model_state": {f"module.{k}": torch.tensor(v, dtype=torch.float32) for k, v in checkpoint.items()}}, path
    )
    config = config_for()
    config.init_checkpoint = path
    config.num_train_steps, config.schedule.base_lr = 1, 1e-9
    state = train_and_evaluate(config, str(tmp_path / "run"))
    embed = jax.device_get(state.params["backbone"]["embed"]["kernel"])
    np.testing.assert_allclose(embed, checkpoint["patch_embed.weight"].transpose(2, 3, 4, 1, 0), atol=1e-6)
    assert state.params["backbone"]["head"]["kernel"].shape == (12, 4)


def test_the_validate_hook_runs_before_anything_compiles(patchnet, tmp_path):
    with pytest.raises(ValueError, match=rf"config.model.{NAME}.patch=5: expected a divisor of the frame size 32x32"):
        train_and_evaluate(config_for(patch=5), str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_a_registered_backbone_has_its_config_keys(patchnet):
    assert BACKBONES[NAME] is PatchNet
    assert NAME in common.base_config().model
