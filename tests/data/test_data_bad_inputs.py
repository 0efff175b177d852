"""Splits made only of unreadable files, with data.on_bad_input='skip': a clear error naming the manifest."""
import numpy as np
import pytest

from vmp_jax import data
from vmp_jax.data import pipeline


def _unreadable_manifest(videos, path):
  """4 unreadable items: a missing, a zero-byte, a non-video and a truncated file."""
  path.write_text(f"missing.mp4,0\n{videos}/empty.mp4,0\n{videos}/classes.txt,1\n{videos}/truncated.mp4,2\n")
  return str(path)


def _config(videos, train_manifest, eval_manifest, **kw):
  cfg = data.default_data_config()
  cfg.update(source="video_manifest", train_manifest=train_manifest, eval_manifest=eval_manifest,
             class_names=str(videos / "classes.txt"), video_root=str(videos), on_bad_input="skip", sampling_rate=1,
             train_scale=(40, 40), crop_size=32, eval_short_side=40, eval_num_clips=1, eval_num_crops=1, **kw)
  return cfg


@pytest.mark.parametrize("num_workers", [0, 1])
def test_all_unreadable_train_split_raises_naming_the_manifest(videos, tmp_path, num_workers):
  train = _unreadable_manifest(videos, tmp_path / "train.csv")
  (tmp_path / "test.csv").write_text(f"{videos}/grey.mp4,0\n")
  cfg = _config(videos, train, str(tmp_path / "test.csv"), num_workers=num_workers)
  s = data.make_datasets(cfg, num_frames=3, global_batch_size=2, eval_batch_size=2, seed=0)
  with pytest.raises(pipeline.UnreadableSplitError) as e:
    next(iter(s.train))
  message = str(e.value)
  assert train in message and "all 4 items were tried" in message
  assert "skipped_FileNotFoundError" in message and "skipped_VideoError" in message


def test_mostly_unreadable_train_split_still_trains(videos, tmp_path):
  train = tmp_path / "train.csv"
  train.write_text(open(_unreadable_manifest(videos, tmp_path / "bad.csv")).read() * 3 + f"{videos}/xy.mkv,1\n")
  (tmp_path / "test.csv").write_text(f"{videos}/grey.mp4,0\n")
  s = data.make_datasets(_config(videos, str(train), str(tmp_path / "test.csv")), num_frames=3, global_batch_size=2,
                         eval_batch_size=2, seed=0)
  it = iter(s.train)
  labels = np.concatenate([next(it)["label"] for _ in range(3)])  # 3 batches of the one readable video: 3+ epochs
  assert labels.tolist() == [1] * 6


def test_all_unreadable_eval_split_names_the_manifest(videos, tmp_path):
  (tmp_path / "train.csv").write_text(f"{videos}/grey.mp4,0\n{videos}/xy.mkv,1\n")
  test = _unreadable_manifest(videos, tmp_path / "test.csv")
  with pytest.raises(pipeline.UnreadableSplitError, match=f"{test}: 4 videos.*no item could be read"):
    data.make_datasets(_config(videos, str(tmp_path / "train.csv"), test), num_frames=3, global_batch_size=2,
                       eval_batch_size=2, seed=0)
