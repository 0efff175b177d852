"""Data for vmp_jax: sources (procedural, video files, TFDS ArrayRecord), transforms, grain pipelines, evaluation.

Public API (the trainer codes against these):
  make_datasets(data_config, *, num_frames, global_batch_size, eval_batch_size, seed, process_index=0,
                process_count=1) -> DataSplits(train, eval, num_classes, class_names, eval_num_views, eval_num_videos)
  default_data_config() -> ml_collections.ConfigDict
  train_dataset(source, *, batch_size, seed, transform=None, shard_index=0, shard_count=1, num_workers=0, ...)
  eval_dataset(source, *, batch_size, transform=None, shard_index=0, shard_count=1, num_workers=0, ...)
  standardize(frames_uint8) -> float32   # apply on device, inside the jitted step, as the last step
  MultiViewAccumulator(num_classes, num_views)  .update(logits, video_index, label, mask) / .result()
  ProceduralMotionSource(num_examples, num_frames, height, width, num_classes, seed, ...)
"""

from vmp_jax.data.builders import DataSplits, default_data_config, make_datasets
from vmp_jax.data.multiview import MultiViewAccumulator, save_confusion_png
from vmp_jax.data.pipeline import eval_dataset, train_dataset
from vmp_jax.data.procedural import ProceduralMotionSource
from vmp_jax.data.transforms import standardize

__all__ = [
    "DataSplits",
    "default_data_config",
    "make_datasets",
    "MultiViewAccumulator",
    "save_confusion_png",
    "eval_dataset",
    "train_dataset",
    "ProceduralMotionSource",
    "standardize",
]
