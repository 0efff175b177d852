"""make_datasets / default_data_config: the contract with the trainer."""
import numpy as np
import pytest

from vmp_jax import data


def test_procedural_splits_per_process():
  cfg = data.default_data_config()
  cfg.procedural.update(num_train=32, num_eval=10, height=16, width=16, num_classes=4)
  splits = [data.make_datasets(cfg, num_frames=5, global_batch_size=8, eval_batch_size=4, seed=0,
                               process_index=p, process_count=2) for p in range(2)]
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
  cfg.source = "nope"
  with pytest.raises(ValueError, match="data.source"):
    data.make_datasets(cfg, num_frames=5, global_batch_size=4, eval_batch_size=4, seed=0)


def test_standardize_matches_formula():
  x = np.array([0, 115, 255], np.uint8)
  np.testing.assert_allclose(data.standardize(x), (x / 255.0 - 0.45) / 0.225, atol=1e-6)
  assert data.standardize(x).dtype == np.float32
  import jax.numpy as jnp
  np.testing.assert_allclose(np.asarray(data.standardize(jnp.asarray(x))), (x / 255.0 - 0.45) / 0.225, atol=1e-6)
