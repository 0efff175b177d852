"""TimeSformer through the whole pipeline: the official VMPs checkpoint (made here with random weights) imported
whole gives the reference PyTorch pipeline's logits, and a TimeSformer run trains, exports the official format
(which loads strictly into the reference model) and predicts."""

import jax
import numpy as np
import pytest
from hf_timesformer import from_reference, hf_logits, random_timesformer, reference_state_dict, vmps_layer
from tiny_run import tiny_config

from vmp_jax import convert, export, predict
from vmp_jax.bundle import load_bundle, load_exported, logits_fn
from vmp_jax.data import standardize
from vmp_jax.models import factory
from vmp_jax.training import run_dir, steps
from vmp_jax.training.mesh import global_batch
from vmp_jax.training.run import make_schedule, run_length, train_and_evaluate
from vmp_jax.visualize import panels

TINY = dict(depth=2, width=64, num_heads=4, patch_size=8, image_size=32, num_frames=4)


pytestmark = pytest.mark.usefixtures("fast_compile")


def timesformer_config(**overrides):
    c = tiny_config(**overrides)
    c.model.backbone = "timesformer"
    c.model.timesformer.update(TINY)
    c.model.vmp.luma = "reference"  # the official layer's weights
    return c


def reference_pipeline(net, layer, clips):
    """The reference's eval: uint8 clips (B, T+1, H, W, 3) standardised, the VMPs layer on (B, C, T+1, H, W), the
    TimeSformer on the prompts."""
    import torch  # pylint: disable=import-outside-toplevel

    frames = torch.tensor(np.asarray(standardize(clips)).transpose(0, 4, 1, 2, 3))
    with torch.no_grad():
        prompts = layer(frames).numpy().transpose(0, 2, 3, 4, 1)  # back to (B, T, H, W, 3)
    return hf_logits(net, prompts)


def load_reference(state_dict, net, layer):
    """`load_state_dict(strict=True)` of a whole-model state dict with the reference's names (`model.<name>`,
    `vmps.m`, `vmps.n`) into the HF model (renamed by the test's table) and the VMPs layer."""
    import torch  # pylint: disable=import-outside-toplevel

    model = {
        from_reference(k[len("model.") :]): torch.as_tensor(v) for k, v in state_dict.items() if k.startswith("model.")
    }
    net.load_state_dict(model, strict=True)
    layer.load_state_dict(
        {k[len("vmps.") :]: torch.as_tensor(v) for k, v in state_dict.items() if k.startswith("vmps.")}, strict=True
    )
    assert len(model) + 2 == len(state_dict)


def official_checkpoint(path, net, layer, with_vmp=True):
    """A checkpoint as the VMPs code saves it (PySlowFast's `model_state` of `vit_base_patch16_224`)."""
    import torch  # pylint: disable=import-outside-toplevel

    official = {f"model.{k}": torch.tensor(v) for k, v in reference_state_dict(net).items()}
    if with_vmp:
        official.update({"vmps.m": layer.m.detach().clone(), "vmps.n": layer.n.detach().clone()})
    torch.save({"epoch": 25, "model_state": official, "optimizer_state": {}}, path)
    return official


def test_official_vmps_checkpoint_imports_whole_and_exports_back(tmp_path):
    pytest.importorskip("torch")
    net, layer = random_timesformer(num_classes=4, seed=11), vmps_layer(0.3, -0.2)
    path = str(tmp_path / "checkpoint_epoch_00025.pyth")
    official = official_checkpoint(path, net, layer)

    config = timesformer_config()
    model = factory.build_model(config.model, num_classes=4)
    init = jax.device_get(factory.init_variables(model, jax.random.key(0), (1, 5, 32, 32, 3)))
    variables = convert.load_pretrained_backbone(init, path, "timesformer", factory.backbone_kwargs(config.model))
    assert variables["params"]["vmp"]["m"].shape == () and np.isclose(variables["params"]["vmp"]["m"], 0.3)

    clips = np.random.default_rng(0).integers(0, 256, (2, 5, 32, 32, 3), dtype=np.uint8)
    ref = reference_pipeline(net, layer, clips)
    ours = np.asarray(logits_fn(model, variables)(clips))
    assert np.abs(ref).max() > 0.1
    assert np.abs(ours - ref).max() / np.abs(ref).max() < 1e-5

    back = convert.classifier_to_torch(variables, "timesformer", factory.backbone_kwargs(config.model))
    assert sorted(back) == sorted(official)
    for k, v in official.items():
        np.testing.assert_array_equal(back[k].numpy(), v.numpy(), err_msg=k)
    load_reference(back, random_timesformer(num_classes=4, seed=12), vmps_layer(0.0, 0.0))


def test_a_timesformer_run_trains_exports_the_official_format_and_predicts(tmp_path):
    torch = pytest.importorskip("torch")
    config = timesformer_config(num_train_steps=2, checkpoint_every_steps=2, **{"data.procedural.num_classes": 3})
    workdir, out = str(tmp_path / "run"), str(tmp_path / "export")
    state = train_and_evaluate(config, workdir)
    assert state.batch_stats == {}
    written = export.export_run(workdir, out, platforms=("cpu",), log=lambda line: None)
    state_dict = torch.load(written["pytorch_state_dict"])
    assert state_dict["vmps.m"].shape == (1,) and "model.blocks.1.temporal_fc.weight" in state_dict

    net, layer = random_timesformer(num_classes=3, seed=13), vmps_layer(0.0, 0.0)
    load_reference(state_dict, net, layer)
    np.testing.assert_allclose(layer.m.detach().numpy(), np.asarray(state.params["vmp"]["m"]).reshape(1))

    clips = np.random.default_rng(1).integers(0, 256, (2, 5, 32, 32, 3), dtype=np.uint8)
    exported = load_exported(written["jax_export"])
    ours = np.asarray(exported.call(clips))
    ref = reference_pipeline(net, layer, clips)
    assert np.abs(ours - ref).max() / max(1.0, np.abs(ref).max()) < 1e-5
    probs = predict.video_probabilities(exported, clips)
    np.testing.assert_allclose(probs, jax.nn.softmax(ref, axis=-1).mean(0), atol=1e-5)


CONVERT_FLAGS = [
    "--config=configs/timesformer_mpii_cooking2.py",
    "--platforms=cpu",
    "--config.num_frames=4",
    "--config.data.crop_size=32",
    "--config.model.num_classes=4",
    "--config.model.dtype=float32",
] + [f"--config.model.timesformer.{k}={v}" for k, v in TINY.items()]


def test_the_import_command_writes_a_bundle_that_predicts_like_the_reference(tmp_path):
    pytest.importorskip("torch")
    from vmp_jax.convert import __main__ as convert_command  # pylint: disable=import-outside-toplevel

    net, layer = random_timesformer(num_classes=4, seed=14), vmps_layer(-0.5, 0.4)
    path = str(tmp_path / "vmps.pyth")
    official_checkpoint(path, net, layer)
    out = str(tmp_path / "bundle")
    assert convert_command.main(["--checkpoint", path, "--out", out] + CONVERT_FLAGS) == 0
    bundle = load_bundle(out)
    assert bundle.class_names == ["class_0", "class_1", "class_2", "class_3"] and bundle.num_frames == 5
    clips = np.random.default_rng(2).integers(0, 256, (2, 5, 32, 32, 3), dtype=np.uint8)
    ref = reference_pipeline(net, layer, clips)
    for ours in (
        logits_fn(bundle.model, bundle.variables)(clips),
        load_exported(f"{out}/{run_dir.EXPORTED}").call(clips),
    ):
        assert np.abs(np.asarray(ours) - ref).max() / np.abs(ref).max() < 1e-5
    setting = panels.setting_from_run(out)  # what `python -m vmp_jax.visualize --workdir OUT` shows
    assert setting.luma == "reference" and np.isclose(setting.params["m"], -0.5) and setting.num_steps == 4


def test_the_import_command_refuses_what_the_checkpoint_lacks(tmp_path, capsys):
    pytest.importorskip("torch")
    from vmp_jax.convert import __main__ as convert_command  # pylint: disable=import-outside-toplevel

    path = str(tmp_path / "baseline.pyth")
    official_checkpoint(path, random_timesformer(num_classes=4, seed=15), None, with_vmp=False)
    out = str(tmp_path / "bundle")
    assert convert_command.main(["--checkpoint", path, "--out", out] + CONVERT_FLAGS) == 2
    assert "has no motion prompt parameters" in capsys.readouterr().err
    assert (
        convert_command.main(
            ["--checkpoint", path, "--out", out]
            + CONVERT_FLAGS
            + ["--config.model.num_classes=3", "--config.model.use_vmp=False"]
        )
        == 2
    )
    assert "head does not fit" in capsys.readouterr().err


def test_the_mpii_recipe_is_the_references_schedule_and_batch():
    from configs import timesformer_mpii_cooking2  # pylint: disable=import-outside-toplevel

    config = timesformer_mpii_cooking2.get_config()
    steps_per_epoch, total = run_length(config, num_train_examples=64 * 100)
    schedule = make_schedule(config, steps_per_epoch, total)
    rates = [float(schedule(e * steps_per_epoch)) for e in (0, 10.99, 11, 14, 24.99)]
    np.testing.assert_allclose(rates, [0.005, 0.005, 0.0005, 0.00005, 0.00005], rtol=1e-6)
    assert total == 25 * 100
    assert config.batch_size // config.grad_accum_steps == 8  # the reference's 8 clips per accumulation step
    assert factory.model_num_frames(config.num_frames, config.model.use_vmp) == 9


def test_per_pixel_motion_prompt_trains_in_front_of_a_backbone_without_batch_stats():
    from tiny_run import setup  # pylint: disable=import-outside-toplevel

    config = timesformer_config(**{"model.vmp.parametrization": "per_pixel"})
    mesh, model, tx, schedule, state, batch = setup(config, 2)
    assert state.batch_stats == {} and state.params["vmp"]["m"].shape == (32, 32)
    initial_m = jax.device_get(state.params["vmp"]["m"])
    step = steps.make_train_step(mesh, model, tx, config.vmp_lambda, schedule)
    with jax.set_mesh(mesh):
        new_state, metrics = step(state, global_batch(mesh, batch), jax.random.key(1))  # state donated
    moved = np.abs(jax.device_get(new_state.params["vmp"]["m"]) - initial_m)
    assert new_state.batch_stats == {} and np.isfinite(float(metrics["loss"])) and (moved > 0).mean() > 0.5
