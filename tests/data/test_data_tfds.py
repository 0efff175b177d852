"""TFDS builders: prepare ArrayRecord (raw and JPEG) without TensorFlow, read back, feed make_datasets."""

import numpy as np
import pytest

from vmp_jax import data
from vmp_jax.data import tfds_builders as tb
from vmp_jax.data import video
from vmp_jax.data.procedural import ProceduralMotionSource


@pytest.mark.parametrize("storage", ["raw", "jpeg"])
def test_procedural_round_trip(tmp_path, storage):
    cfg = tb.ProceduralMotionConfig(
        name=storage, num_train=6, num_eval=3, num_frames=4, height=24, width=32, storage=storage
    )
    tb.ProceduralMotion(config=cfg, data_dir=str(tmp_path)).download_and_prepare(file_format="array_record")
    train, test, names = tb.load_sources("procedural_motion", storage, str(tmp_path), "train", "test")
    assert (len(train), len(test), len(names)) == (6, 3, 4)
    ref = ProceduralMotionSource(6, 4, 24, 32, 4, seed=0)
    for i in range(6):
        item = train[i]
        want = ref[item["source_index"]]
        got = item["frames"][np.arange(4)]
        assert got.shape == (4, 24, 32, 3) and item["label"] == int(want["label"])
        err = np.abs(got.astype(int) - want["frames"]).mean()
        other = np.abs(got.astype(int) - ref[(item["source_index"] + 1) % 6]["frames"]).mean()
        # Raw is exact; JPEG q90 on tiny noisy synthetic frames is off by ~13 grey levels, another clip by ~60.
        assert err == 0 if storage == "raw" else (err < 16 and other > 3 * err)


def test_manifest_builder_and_make_datasets(videos, tmp_path):
    (tmp_path / "train.csv").write_text("grey.mp4,0\nxy.mkv,1\nmissing.mp4,1\n")
    (tmp_path / "test.csv").write_text("xy.mkv,1\nshort.mp4,2\n")
    cfg = tb.VideoManifestConfig(
        name="toy",
        manifests={"train": str(tmp_path / "train.csv"), "test": str(tmp_path / "test.csv")},
        class_names=str(videos / "classes.txt"),
        video_root=str(videos),
        short_side=40,
        storage="raw",
        on_bad_input="skip",
    )
    builder = tb.VideoManifest(config=cfg, data_dir=str(tmp_path / "tfds"))
    builder.download_and_prepare(file_format="array_record")
    assert builder.skipped["FileNotFoundError"] == 1 and "train.csv:3" in builder.problems[0]
    train, test, names = tb.load_sources("video_manifest", "toy", str(tmp_path / "tfds"), "train", "test")
    assert names == ["grey", "xy", "short"] and len(train) == 2 and len(test) == 2
    xy = next(train[i] for i in range(2) if train[i]["label"] == 1)
    want = video.read_frames(str(videos / "xy.mkv"), np.arange(20))
    assert xy["frames"].shape == (20, 40, 56, 3) and xy["fps"] == 10.0
    np.testing.assert_array_equal(xy["frames"], want)  # short side already 40: stored losslessly

    dc = data.default_data_config()
    dc.update(
        source="tfds",
        sampling_rate=2,
        train_scale=(40, 40),
        crop_size=32,
        eval_short_side=40,
        eval_num_clips=2,
        eval_num_crops=3,
    )
    dc.tfds.update(name="video_manifest", config="toy", data_dir=str(tmp_path / "tfds"))
    s = data.make_datasets(dc, num_frames=3, global_batch_size=2, eval_batch_size=6, seed=0)
    assert s.num_classes == 3 and s.eval_num_views == 6 and s.eval_num_videos == 2
    assert next(iter(s.train))["frames"].shape == (2, 3, 32, 32, 3)
    batches = list(s.eval)
    assert len(batches) == 2 and all(b["mask"].all() for b in batches)


def test_a_stored_short_side_other_than_the_training_one_is_named(videos, tmp_path, caplog):
    (tmp_path / "train.csv").write_text("xy.mkv,1\n")
    cfg = tb.VideoManifestConfig(
        name="s40",
        manifests={"train": str(tmp_path / "train.csv"), "test": str(tmp_path / "train.csv")},
        class_names=str(videos / "classes.txt"),
        video_root=str(videos),
        short_side=40,
    )
    tb.VideoManifest(config=cfg, data_dir=str(tmp_path / "tfds")).download_and_prepare(file_format="array_record")
    dc = data.default_data_config()
    dc.update(source="tfds", crop_size=32, eval_num_clips=1, eval_num_crops=1)
    dc.tfds.update(name="video_manifest", config="s40", data_dir=str(tmp_path / "tfds"), eval_split="train")
    for scale, eval_side, warned in (((36, 40), 36, None), ((32, 36), 32, "more pixels"), ((40, 48), 40, "upsampled")):
        caplog.clear()
        dc.update(train_scale=scale, eval_short_side=eval_side)
        data.make_datasets(dc, num_frames=3, global_batch_size=1, eval_batch_size=1, seed=0)
        messages = [r.getMessage() for r in caplog.records if "short side 40" in r.getMessage()]
        if warned is None:
            assert not messages
        else:
            assert len(messages) == 1 and warned in messages[0]
            assert f"--short_side={max(scale[1], eval_side)}" in messages[0] and "'s40'" in messages[0]


def test_missing_prepared_dataset(tmp_path):
    with pytest.raises(FileNotFoundError, match="prepare"):
        tb.load_sources("video_manifest", "nope", str(tmp_path), "train", "test")


def test_strict_builder_names_the_manifest_line(videos, tmp_path):
    (tmp_path / "train.csv").write_text("grey.mp4,0\ncorrupt.mp4,1\n")
    cfg = tb.VideoManifestConfig(
        name="bad",
        manifests={"train": str(tmp_path / "train.csv")},
        class_names=str(videos / "classes.txt"),
        video_root=str(videos),
        short_side=40,
    )
    with pytest.raises(ValueError, match=r"train.csv:2.*corrupt.mp4"):
        tb.VideoManifest(config=cfg, data_dir=str(tmp_path / "tfds")).download_and_prepare(file_format="array_record")


def test_prepare_cli_summary(videos, tmp_path):
    import os
    import subprocess
    import sys

    (tmp_path / "train.csv").write_text("grey.mp4,0\ncorrupt.mp4,1\nxy.mkv,7\n")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "vmp_jax.data.prepare",
            "--name=cli",
            f"--data_dir={tmp_path / 'tfds'}",
            f"--manifest=train={tmp_path / 'train.csv'}",
            f"--class_names={videos / 'classes.txt'}",
            f"--video_root={videos}",
            "--short_side=40",
            "--storage=jpeg",
            "--on_bad_input=skip",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
        env={**os.environ, "PYTHONPATH": root},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "train: 1 videos" in out.stdout and "skipped: 2" in out.stdout
    assert "train.csv:2" in out.stdout and "train.csv:3: label 7 out of range" in out.stdout


def test_prepare_summary_says_how_many_problems_it_leaves_out():
    import collections
    import types

    from vmp_jax.data import prepare

    split = types.SimpleNamespace(num_examples=3, num_bytes=2**20)
    info = types.SimpleNamespace(full_name="video_manifest/x/1.0.0", splits={"train": split})
    builder = types.SimpleNamespace(
        info=info,
        data_dir="/tmp/tfds",
        skipped=collections.Counter(malformed_line=13),
        problems=[f"train.csv:{i}: bad" for i in range(1, 14)],
    )
    lines = prepare.summary(builder).splitlines()
    assert lines[-11:-1] == [f"    train.csv:{i}: bad" for i in range(1, 11)]
    assert lines[-1] == "    ... and 3 more"
    builder.problems = builder.problems[:10]
    assert prepare.summary(builder).splitlines()[-1] == "    train.csv:10: bad"


def test_prepare_finds_a_file_truncated_after_its_header(videos):
    # prepare decodes every frame, so it stops at (or with 'skip' lists) what check_videos reports, up front.
    with pytest.raises(video.VideoError, match="truncated or corrupt: frames \\[6, 7"):
        tb.decode_whole_video(str(videos / "truncated.mkv"), start_sec=0.0, end_sec=None, target_fps=0.0, short_side=40)
