"""make_datasets / default_data_config: the contract with the trainer."""

import os
import subprocess
import sys

import numpy as np
import pytest
from videogen import manifest_config

from vmp_jax import data


def test_procedural_splits_per_process():
    cfg = data.default_data_config()
    cfg.procedural.update(num_train=32, num_eval=10, height=16, width=16, num_classes=4)
    splits = [
        data.make_datasets(
            cfg, num_frames=5, global_batch_size=8, eval_batch_size=4, seed=0, process_index=p, process_count=2
        )
        for p in range(2)
    ]
    s = splits[0]
    assert s.num_classes == 4 and len(s.class_names) == 4 and s.eval_num_views == 1 and s.eval_num_videos == 10
    batch = next(iter(s.train))
    assert batch["frames"].shape == (4, 5, 16, 16, 3) and batch["frames"].dtype == np.uint8
    eval_batches = [list(x.eval) for x in splits]
    assert len(eval_batches[0]) == len(eval_batches[1]) == 3  # 5 videos per process, batches of 2
    vids = sorted(int(v) for bs in eval_batches for b in bs for v, m in zip(b["video_index"], b["mask"]) if m)
    assert vids == list(range(10))


def test_bad_config_names_the_key():
    cfg = data.default_data_config()
    with pytest.raises(ValueError, match="global_batch_size"):
        data.make_datasets(cfg, num_frames=5, global_batch_size=3, eval_batch_size=4, seed=0, process_count=2)
    cfg.clips_per_video = 2
    with pytest.raises(ValueError, match="data.clips_per_video=2 with data.source='procedural'"):
        data.make_datasets(cfg, num_frames=5, global_batch_size=4, eval_batch_size=4, seed=0)
    cfg.clips_per_video, cfg.num_workers = 1, -2
    with pytest.raises(ValueError, match="data.num_workers=-2"):
        data.make_datasets(cfg, num_frames=5, global_batch_size=4, eval_batch_size=4, seed=0)
    cfg.source = "nope"
    with pytest.raises(ValueError, match="data.source"):
        data.make_datasets(cfg, num_frames=5, global_batch_size=4, eval_batch_size=4, seed=0)


def test_standardize_matches_formula():
    x = np.array([0, 115, 255], np.uint8)
    np.testing.assert_allclose(data.standardize(x), (x / 255.0 - 0.45) / 0.225, atol=1e-6)
    assert data.standardize(x).dtype == np.float32
    import jax.numpy as jnp

    np.testing.assert_allclose(np.asarray(data.standardize(jnp.asarray(x))), (x / 255.0 - 0.45) / 0.225, atol=1e-6)


def test_video_manifest_end_to_end(videos, tmp_path):
    (tmp_path / "train.csv").write_text("grey.mp4,grey\nxy.mkv,xy\nshort.mp4,short\nxy.mkv,1\n")
    (tmp_path / "test.csv").write_text("xy.mkv,1\ngrey.mp4,0\nshort.mp4,2\n")
    cfg = manifest_config(videos, tmp_path / "train.csv", tmp_path / "test.csv")
    s = data.make_datasets(cfg, num_frames=4, global_batch_size=2, eval_batch_size=4, seed=0)
    assert s.num_classes == 3 and s.class_names == ["grey", "xy", "short"] and s.eval_num_views == 6
    batch = next(iter(s.train))
    assert batch["frames"].shape == (2, 4, 32, 32, 3) and batch["frames"].dtype == np.uint8
    batches = list(s.eval)
    assert len(batches) == 5  # 3 videos x 6 views = 18 -> 5 batches of 4, the last one half padding
    mask = np.concatenate([b["mask"] for b in batches])
    vids = np.concatenate([b["video_index"] for b in batches])[mask]
    labels = np.concatenate([b["label"] for b in batches])[mask]
    assert mask.sum() == 18 and np.bincount(vids).tolist() == [6, 6, 6]
    assert dict(zip(vids.tolist(), labels.tolist())) == {0: 1, 1: 0, 2: 2}
    # Each view shows its own video (the eval transform reuses a decoded clip across crops, from several threads):
    # xy.mkv (video 0) has distinct colour channels, the grey videos 1 and 2 have equal ones.
    frames = np.concatenate([b["frames"] for b in batches])[mask].astype(int)
    channel_spread = np.abs(frames[..., 0] - frames[..., 1]).mean(axis=(1, 2, 3))
    assert ((channel_spread > 20) == (vids == 0)).all()
    # Two clips per video: a batch of 4 is 2 videos x 2 clips; an epoch is 2 clips of each of the 4 videos.
    cfg.clips_per_video = 2
    s = data.make_datasets(cfg, num_frames=4, global_batch_size=4, eval_batch_size=4, seed=0)
    batch = next(iter(s.train))
    assert batch["frames"].shape == (4, 4, 32, 32, 3) and s.num_train_examples == 8 and s.clips_per_item == 2
    assert batch["label"][0] == batch["label"][1] and batch["label"][2] == batch["label"][3]
    with pytest.raises(ValueError, match="not a multiple of clips_per_item=2"):
        data.make_datasets(cfg, num_frames=4, global_batch_size=3, eval_batch_size=4, seed=0)


def test_imports_and_workers_inside_an_absl_app(tmp_path):
    """grain registers absl flags: an absl app (like train.py) with its own flags must parse and run workers."""
    script = tmp_path / "app.py"
    script.write_text(
        "from absl import app, flags\n"
        "from vmp_jax import data\n"
        "flags.DEFINE_integer('steps', 1, 'x')\n"
        "def main(_):\n"
        "  cfg = data.default_data_config()\n"
        "  cfg.procedural.update(num_train=8, num_eval=4, height=16, width=16)\n"
        "  cfg.num_workers = 1\n"
        "  s = data.make_datasets(cfg, num_frames=3, global_batch_size=4, eval_batch_size=4, seed=0)\n"
        "  print('shape', next(iter(s.train))['frames'].shape, flags.FLAGS.steps)\n"
        "if __name__ == '__main__':\n"
        "  app.run(main)\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run(
        [sys.executable, str(script), "--steps=3"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
        env={**os.environ, "PYTHONPATH": root},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "shape (4, 3, 16, 16, 3) 3" in out.stdout
