"""The training system: multi-device steps, overfitting, the loop's outputs, resume, config checks, NaN stop."""

import glob
import json
import os
import pathlib
import shutil

import jax
import numpy as np
import pytest
from tiny_run import setup, tiny_config

from vmp_jax import cli
from vmp_jax.training import checkpointing, loop, run_dir, steps, trained_run
from vmp_jax.training.mesh import global_batch
from vmp_jax.training.metric_writers import read_metrics, read_tensorboard_scalars
from vmp_jax.training.run import train_and_evaluate


def run_steps(config, num_devices, num_steps):
    mesh, model, tx, schedule, state, batch = setup(config, num_devices)
    step = steps.make_train_step(mesh, model, tx, config.vmp_lambda, schedule)
    losses = []
    with jax.set_mesh(mesh):
        for _ in range(num_steps):
            state, metrics = step(state, global_batch(mesh, batch), jax.random.key(1))
            losses.append(float(metrics["loss"]))
    return losses, jax.device_get(state)


def test_one_device_and_eight_devices_agree():
    config = tiny_config()
    losses1, state1 = run_steps(config, 1, 2)
    losses8, state8 = run_steps(config, 8, 2)
    np.testing.assert_allclose(losses1, losses8, rtol=1e-5)
    # Gradients averaged, not summed over devices: parameters after two steps agree.
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6), state1.params, state8.params)
    # BatchNorm statistics are those of the global batch, on every device count.
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), state1.batch_stats, state8.batch_stats
    )
    initial_m = jax.device_get(setup(config, 1)[4].params["vmp"]["m"])
    assert float(state1.params["vmp"]["m"]) != float(initial_m)  # m is trained


@pytest.mark.parametrize("pn, name", [("maxexp", "vmp_eta"), ("asinhe", "vmp_gamma")])
def test_power_normalisation_is_trained_and_reported(pn, name):
    config = tiny_config(**{"model.vmp.pn": pn, "model.vmp.pn_init_value": 5.0})
    mesh, model, tx, schedule, state, batch = setup(config, 2)
    assert list(state.params["vmp"]) == [name.replace("vmp_", "log_")]
    step = steps.make_train_step(mesh, model, tx, config.vmp_lambda, schedule)
    with jax.set_mesh(mesh):
        new_state, metrics = step(state, global_batch(mesh, batch), jax.random.key(1))
    assert "vmp_slope_a" not in metrics
    learned = float(np.exp(jax.device_get(new_state.params["vmp"][name.replace("vmp_", "log_")])))
    assert float(metrics[name]) == pytest.approx(learned, rel=1e-6) and learned != pytest.approx(5.0, rel=1e-7)


def test_tiny_batch_is_overfitted():
    config = tiny_config(**{"schedule.base_lr": 0.1})
    mesh, model, tx, schedule, state, batch = setup(config, 2)
    step = steps.make_train_step(mesh, model, tx, config.vmp_lambda, schedule)
    with jax.set_mesh(mesh):
        for _ in range(60):
            state, metrics = step(state, global_batch(mesh, batch), jax.random.key(1))
    assert float(metrics["accuracy"]) == 1.0
    assert float(metrics["cross_entropy"]) < 0.1


def test_train_and_evaluate_writes_metrics_checkpoints_and_resumes(tmp_path):
    workdir = str(tmp_path / "run")
    config = tiny_config(eval_every_steps=3)
    state = train_and_evaluate(config, workdir)
    # The run reads back for inference: classes, input shape and the final variables reproduce the logits.
    run = trained_run.load_run(workdir)
    assert run.step == 6 and run.class_names[1] == "direction_90deg"
    assert run.num_frames == 5 and run.frame_size == (32, 32)
    saved = {"params": state.params, "batch_stats": state.batch_stats}
    jax.tree.map(np.testing.assert_array_equal, run.variables, jax.device_get(saved))
    clips = np.random.default_rng(0).normal(size=(2, 5, 32, 32, 3)).astype(np.float32)
    expected = run.model.apply(saved, clips, train=False)[0]
    np.testing.assert_allclose(run.model.apply(run.variables, clips, train=False)[0], expected, rtol=1e-5, atol=1e-6)
    train = read_metrics(workdir, "train")
    evals = read_metrics(workdir, "eval")
    assert [r["step"] for r in train] == [2, 4, 6] and [r["step"] for r in evals] == [3, 6]
    for key in (
        "loss",
        "cross_entropy",
        "variation",
        "accuracy",
        "learning_rate",
        "vmp_slope_a",
        "vmp_shift_b",
        "clips_per_s",
        "data_wait_s",
        "step_s",
    ):
        assert np.isfinite(train[-1][key]), key
    # The per-step wall time splits into waiting for data and the rest: clips/s = batch / (wait + rest).
    assert train[-1]["clips_per_s"] == pytest.approx(8 / (train[-1]["data_wait_s"] + train[-1]["step_s"]), rel=1e-6)
    assert train[-1]["learning_rate"] == pytest.approx(0.05)
    # loss = cross-entropy + lambda * variation
    assert train[-1]["loss"] == pytest.approx(train[-1]["cross_entropy"] + train[-1]["variation"], rel=1e-5)
    for key in ("top1", "top5", "mean_class_accuracy"):
        assert 0.0 <= evals[-1][key] <= 1.0
    assert evals[-1]["num_videos"] == 16
    assert json.load(open(os.path.join(workdir, "config.json")))["model"]["backbone"] == "tiny"
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(os.path.join(workdir, "tensorboard")))
    assert 6 in checkpointing.Checkpoints(os.path.join(workdir, "checkpoints")).all_steps()
    # The same command with more steps resumes at step 6.
    train_and_evaluate(tiny_config(eval_every_steps=3, num_train_steps=8), workdir)
    logged = [r["step"] for r in read_metrics(workdir, "train")]
    assert logged == [2, 4, 6, 8]


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("num_frames", 1, r"config.num_frames=1: expected T >= 2"),
        ("vmp_lambda", -0.5, r"config.vmp_lambda=-0.5: expected >= 0"),
        ("batch_size", 12, r"config.batch_size=12: expected a positive multiple of the device count \(8 devices"),
        ("model.backbone", "resnet", r"config.model.backbone='resnet': expected one of \[.*'tiny'.*'x3d'.*\]"),
        ("model.num_classes", 7, r"config.model.num_classes=7: expected 0 \(use the data's\) or the data set's 4"),
        ("schedule.name", "linear", r"config.schedule.name='linear'"),
        ("model.vmp.pn", "l2", r"config.model.vmp.pn='l2': expected one of \('sigmoid', 'gamma'"),
        ("model.vmp.pn_init_value", -1.0, r"config.model.vmp.pn_init_value=-1.0: expected >= 0"),
        ("data.eval_during_training_crops", 2, r"config.data.eval_during_training_crops=2: expected 1 \(centre\) or 3"),
        ("data.eval_num_clips", 0, r"config.data.eval_num_clips=0: expected >= 1 clips per video"),
        ("data.num_workers", -2, r"config.data.num_workers=-2; expected >= 0, or -1 for one per available CPU core"),
        ("data.clips_per_video", 3, r"config.data.clips_per_video=3: expected clips_per_video x crops_per_clip"),
    ],
)
def test_invalid_config_fails_naming_the_key(tmp_path, key, value, message):
    with pytest.raises(ValueError, match=message):
        train_and_evaluate(tiny_config(**{key: value}), str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    workdir = str(tmp_path / "run")
    # The rate jumps x1e30 after step 3 (epochs of 8 steps): the loss is finite up to the checkpoint at step 3.
    blow_up = tiny_config(
        num_train_steps=6,
        **{"schedule.name": "steps", "schedule.boundaries_epochs": (0.4,), "schedule.relative_rates": (1.0, 1e30)},
    )
    message = (
        r"non-finite (loss|parameters) .* at step [4-6]; training stopped and the last good checkpoint, "
        r"step 3, is kept in .*checkpoints. Rerunning the same command stops the same way"
    )
    with pytest.raises(loop.NonFiniteError, match=message) as first:
        train_and_evaluate(blow_up, workdir)
    with pytest.raises(loop.NonFiniteError, match=message) as again:  # resumed from step 3: the same stop
        train_and_evaluate(blow_up, workdir)
    assert str(again.value) == str(first.value)
    checkpoints = checkpointing.Checkpoints(os.path.join(workdir, "checkpoints"))
    assert checkpoints.all_steps() == [3]
    state = checkpoints.restore_state()
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state["params"]))


def test_non_finite_before_any_checkpoint_says_there_is_none(tmp_path):
    with pytest.raises(loop.NonFiniteError, match=r"at step \d; training stopped and no checkpoint was saved"):
        train_and_evaluate(tiny_config(**{"schedule.base_lr": 1e30}), str(tmp_path / "run"))


@pytest.mark.slow
def test_fine_tuning_from_a_pytorchvideo_checkpoint_file(tmp_path):
    torch = pytest.importorskip("torch")
    from pytorchvideo_x3d import random_x3d

    from vmp_jax import convert

    net = random_x3d("xs", 4, 160, num_classes=400)
    path = str(tmp_path / "X3D_XS.pyth")
    torch.save({"model_state": net.state_dict()}, path)
    config = tiny_config(
        num_train_steps=1,
        num_frames=3,
        init_checkpoint=path,
        **{"model.backbone": "x3d", "model.x3d.variant": "xs", "schedule.base_lr": 1e-9},
    )
    state = train_and_evaluate(config, str(tmp_path / "run"))
    loaded = convert.x3d_from_torch(convert.load_torch_checkpoint(path), variant="xs", num_classes=4)
    got = jax.device_get(state.params["backbone"])
    # The backbone comes from the file (one step at lr 1e-9 moves nothing visible); the 4-class head is new.
    np.testing.assert_allclose(got["stem_conv_xy"]["kernel"], loaded["params"]["stem_conv_xy"]["kernel"], atol=1e-6)
    assert got["head_proj"]["kernel"].shape[-1] == 4


def test_the_end_of_a_run_says_where_its_files_are_and_a_finished_run_is_not_resumed(tmp_path, capsys):
    workdir = str(tmp_path / "run")
    train_and_evaluate(tiny_config(), workdir)
    out = capsys.readouterr().out
    assert (
        f"Finished 6 steps in {workdir}:\n  metrics      {workdir}/metrics.jsonl (TensorBoard: tensorboard "
        f"--logdir {workdir}/tensorboard)\n  checkpoints  {workdir}/checkpoints (steps 3, 6)\n" in out
    )
    assert "python -m" not in out  # the tools' command lines are train.py's to print, not the trainer's
    lines = len(read_metrics(workdir))
    state = train_and_evaluate(tiny_config(), workdir)
    out = capsys.readouterr().out
    assert out.startswith(f"The run in {workdir} already finished: step 6 of 6, nothing to train")
    assert "Resumed" not in out and "Finished" not in out
    assert int(state.step) == 6 and len(read_metrics(workdir)) == lines


def without_timings(records):
    return [{k: v for k, v in r.items() if k not in ("time", "clips_per_s", "data_wait_s", "step_s")} for r in records]


@pytest.fixture(scope="module")
def uninterrupted_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("uninterrupted"))
    state = train_and_evaluate(resume_config(), workdir)
    return workdir, jax.device_get(state)


def resume_config():
    return tiny_config(log_every_steps=1, checkpoint_every_steps=2, eval_every_steps=3, keep_last=10)


def test_resume_past_written_metrics_leaves_the_metrics_of_an_uninterrupted_run(uninterrupted_run, tmp_path):
    workdir = str(tmp_path / "run")
    train_and_evaluate(resume_config(), workdir)
    # A kill after the metrics of steps 4..6 were written but before checkpoint 4 was committed, cut short while
    # writing a line; the resumed run continues from step 3, whose eval line was written before its checkpoint.
    for step in (4, 6):
        shutil.rmtree(os.path.join(workdir, "checkpoints", str(step)))
    with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
        f.write('{"step": 7, "split": "tra')
    train_and_evaluate(resume_config(), workdir)
    expected, _ = uninterrupted_run
    assert [(r["step"], r["split"]) for r in read_metrics(workdir)] == [
        (1, "train"),
        (2, "train"),
        (3, "train"),
        (3, "eval"),
        (4, "train"),
        (5, "train"),
        (6, "train"),
        (6, "eval"),
    ]
    assert without_timings(read_metrics(workdir)) == without_timings(read_metrics(expected))
    timed = ("train/clips_per_s", "train/data_wait_s", "train/step_s")
    assert [s for s in read_tensorboard_scalars(workdir) if s[0] not in timed] == [
        s for s in read_tensorboard_scalars(expected) if s[0] not in timed
    ]
    assert len(os.listdir(os.path.join(workdir, "tensorboard"))) == 2


def test_damaged_latest_checkpoint_resumes_from_the_previous_one(uninterrupted_run, tmp_path, capsys):
    workdir = str(tmp_path / "run")
    train_and_evaluate(resume_config(), workdir)
    # 4 bytes flipped inside an array file of the last checkpoint: restoring it would not fail, only differ.
    array_files = glob.glob(os.path.join(workdir, "checkpoints", "6", "state", "**", "d", "*"), recursive=True)
    path = max(array_files, key=os.path.getsize)
    content = bytearray(pathlib.Path(path).read_bytes())
    content[len(content) // 2 : len(content) // 2 + 4] = bytes(255 - b for b in content[len(content) // 2 :][:4])
    pathlib.Path(path).write_bytes(bytes(content))
    state = train_and_evaluate(resume_config(), workdir)
    out = capsys.readouterr().out
    assert f"{workdir}/checkpoints/6 is damaged: state/" in out and "Resumed from step 4" in out
    assert glob.glob(os.path.join(workdir, "checkpoints", "damaged", "6-*"))
    expected, expected_state = uninterrupted_run
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(state), expected_state)
    assert without_timings(read_metrics(workdir)) == without_timings(read_metrics(expected))


def test_a_rerun_the_checkpoints_cannot_take_is_refused_before_anything_is_rewritten(tmp_path, capsys):
    workdir = str(tmp_path / "run")
    train_and_evaluate(tiny_config(), workdir)
    saved = {name: (tmp_path / "run" / name).read_bytes() for name in (run_dir.CONFIG, run_dir.RUN_INFO)}
    with pytest.raises(
        cli.ConfigError,
        match=r"differs from the one the run in .*run was trained with, in "
        r"keys that change the model, the data or the optimiser \(data.procedural.num_classes: 4 -> 8; "
        r"optimizer.momentum: 0.9 -> 0.5\)",
    ):
        train_and_evaluate(tiny_config(**{"data.procedural.num_classes": 8, "optimizer.momentum": 0.5}), workdir)
    assert saved == {name: (tmp_path / "run" / name).read_bytes() for name in saved}
    assert trained_run.load_run(workdir).step == 6  # export and visualisation still read the run
    capsys.readouterr()
    # Extending and observing the run is accepted and said.
    state = train_and_evaluate(tiny_config(num_train_steps=9, log_every_steps=3), workdir)
    out = capsys.readouterr().out
    assert (
        "Resuming with changed keys (they extend or observe the run): log_every_steps: 2 -> 3; "
        "num_train_steps: 6 -> 9" in out
    )
    assert int(state.step) == 9
    assert json.loads(saved[run_dir.RUN_INFO])["total_steps"] == 6
    assert run_dir.read_run_info(workdir)["total_steps"] == 9


def test_fields_of_backbones_the_run_does_not_use_are_no_change_on_resume(tmp_path, capsys):
    workdir = str(tmp_path / "run")
    train_and_evaluate(tiny_config(), workdir)
    capsys.readouterr()
    state = train_and_evaluate(tiny_config(**{"model.x3d.variant": "m", "num_train_steps": 7}), workdir)
    assert int(state.step) == 7
    assert "model.x3d" not in capsys.readouterr().out
    with pytest.raises(cli.ConfigError, match=r"model.tiny.width: 8 -> 16"):
        train_and_evaluate(tiny_config(**{"model.tiny.width": 16, "num_train_steps": 8}), workdir)


def test_resuming_on_another_device_count_says_so(tmp_path, capsys):
    workdir = str(tmp_path / "run")
    train_and_evaluate(tiny_config(), workdir)
    info = run_dir.read_run_info(workdir)
    assert info["num_devices"] == jax.device_count()
    run_dir.write_json(os.path.join(workdir, run_dir.RUN_INFO), {**info, "num_devices": 2})
    capsys.readouterr()
    train_and_evaluate(tiny_config(num_train_steps=7), workdir)
    assert (
        f"Resuming on {jax.device_count()} devices a run trained on 2 up to step 6: the global batch is the same"
    ) in capsys.readouterr().out
