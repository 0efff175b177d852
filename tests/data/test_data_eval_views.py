"""The evaluations during training take data.eval_during_training_clips x _crops views; the final test its own."""

import numpy as np
from videogen import manifest_config

from vmp_jax import data


def _config(videos, tmp_path, **kw):
    (tmp_path / "train.csv").write_text("grey.mp4,grey\nxy.mkv,xy\nshort.mp4,short\n")
    (tmp_path / "test.csv").write_text("xy.mkv,1\ngrey.mp4,0\nshort.mp4,2\n")
    return manifest_config(videos, tmp_path / "train.csv", tmp_path / "test.csv", **kw)


def _views(ds):
    batches = list(ds)
    mask = np.concatenate([b["mask"] for b in batches])
    return np.concatenate([b["video_index"] for b in batches])[mask], np.concatenate([b["label"] for b in batches])[
        mask
    ]


def test_eval_during_training_takes_one_view_per_video_by_default(videos, tmp_path):
    s = data.make_datasets(_config(videos, tmp_path), num_frames=4, global_batch_size=2, eval_batch_size=4, seed=0)
    assert s.eval_num_views == 6 and s.eval_during_training_num_views == 1
    light_ids, light_labels = _views(s.eval_during_training)
    full_ids, full_labels = _views(s.eval)
    assert sorted(light_ids.tolist()) == [0, 1, 2] and len(full_ids) == 18
    assert dict(zip(light_ids.tolist(), light_labels.tolist())) == dict(zip(full_ids.tolist(), full_labels.tolist()))


def test_the_same_views_during_training_and_at_the_end_are_one_pass(videos, tmp_path):
    cfg = _config(videos, tmp_path, eval_during_training_clips=2, eval_during_training_crops=3)
    s = data.make_datasets(cfg, num_frames=4, global_batch_size=2, eval_batch_size=4, seed=0)
    assert s.eval_during_training is None and s.eval_num_views == 6
