"""Data for vmp_jax: sources (procedural, video files, TFDS ArrayRecord), transforms, grain pipelines, evaluation.

Public API (the trainer codes against these):
  make_datasets(data_config, *, num_frames, global_batch_size, eval_batch_size, seed, process_index,
                process_count) -> DataSplits
  default_data_config() -> ml_collections.ConfigDict
  train_dataset(source, *, batch_size, seed, ...) / eval_dataset(source, *, batch_size, ...) -> grain.IterDataset
  standardize(frames_uint8) -> float32   # apply on device, inside the jitted step, as the last step
  ProceduralMotionSource(num_examples, num_frames, height, width, num_classes, seed, ...)
"""
from vmp_jax.data.builders import DataSplits, default_data_config, make_datasets
from vmp_jax.data.pipeline import eval_dataset, train_dataset
from vmp_jax.data.procedural import ProceduralMotionSource
from vmp_jax.data.transforms import standardize

__all__ = [
    "DataSplits", "default_data_config", "make_datasets", "eval_dataset", "train_dataset",
    "ProceduralMotionSource", "standardize",
]
