r"""Pre-decode videos into ArrayRecord shards with a TFDS builder, with a progress bar and a summary.

From manifests (see manifest.py; make them from official split files with `python -m vmp_jax.data.splits`):
  python -m vmp_jax.data.prepare --name=ucf101_s1 --data_dir=~/tensorflow_datasets \
      --manifest=train=manifests/ucf101/train1.csv --manifest=test=manifests/ucf101/test1.csv \
      --class_names=manifests/ucf101/classes.txt --video_root=/data/UCF-101 --short_side=256 --on_bad_input=skip
The procedural motion data:
  python -m vmp_jax.data.prepare --builder=procedural --name=default --data_dir=/tmp/tfds
Then train with data.source='tfds', data.tfds.name='video_manifest' (or 'procedural_motion'),
data.tfds.config=NAME, data.tfds.data_dir=DIR.
"""
from __future__ import annotations

import os

from absl import app, flags, logging

from vmp_jax.data import tfds_builders

_BUILDER = flags.DEFINE_enum("builder", "manifest", ["manifest", "procedural"], "What to prepare.")
_NAME = flags.DEFINE_string("name", None, "Builder config name: the dataset's folder under data_dir/<builder>/.",
                            required=True)
_DATA_DIR = flags.DEFINE_string("data_dir", "", "TFDS data_dir ('' = ~/tensorflow_datasets).")
_MANIFEST = flags.DEFINE_multi_string("manifest", [], "SPLIT=PATH of a manifest CSV/TSV; repeat per split.")
_CLASS_NAMES = flags.DEFINE_string("class_names", "", "Class-names file (one per line).")
_VIDEO_ROOT = flags.DEFINE_string("video_root", "", "Prefix of relative manifest paths ('' = manifest's folder).")
_TARGET_FPS = flags.DEFINE_float("target_fps", 0.0, "Resample to this frame rate (0: keep the container's).")
_SHORT_SIDE = flags.DEFINE_integer("short_side", 256, "Stored short side; >= the largest train scale you use.")
_STORAGE = flags.DEFINE_enum("storage", "jpeg", list(tfds_builders.STORAGES), "Per-frame storage.")
_ON_BAD_INPUT = flags.DEFINE_enum("on_bad_input", "error", ["error", "skip"],
                                  "Unreadable video or malformed line: stop with file:line, or skip and count.")
_NUM_TRAIN = flags.DEFINE_integer("num_train", 4096, "procedural: train clips.")
_NUM_EVAL = flags.DEFINE_integer("num_eval", 512, "procedural: eval clips.")
_NUM_FRAMES = flags.DEFINE_integer("num_frames", 9, "procedural: frames per clip (T+1).")
_SIZE = flags.DEFINE_integer("size", 64, "procedural: height and width.")
_NUM_CLASSES = flags.DEFINE_integer("num_classes", 4, "procedural: classes (motion directions).")


def _parse_manifests(values: list[str]) -> dict[str, str]:
  out = {}
  for v in values:
    split, sep, path = v.partition("=")
    if not sep or not split or not path:
      raise ValueError(f"--manifest={v!r}; expected SPLIT=PATH, e.g. train=manifests/train.csv")
    if not os.path.isfile(os.path.expanduser(path)):
      raise FileNotFoundError(f"--manifest {split}: file not found: {path}")
    out[split] = os.path.expanduser(path)
  if not out:
    raise ValueError("no --manifest given; expected at least one SPLIT=PATH")
  return out


def make_builder():
  """The builder the flags describe."""
  data_dir = os.path.expanduser(_DATA_DIR.value) or None
  if _BUILDER.value == "procedural":
    cfg = tfds_builders.ProceduralMotionConfig(
        name=_NAME.value, num_train=_NUM_TRAIN.value, num_eval=_NUM_EVAL.value, num_frames=_NUM_FRAMES.value,
        height=_SIZE.value, width=_SIZE.value, num_classes=_NUM_CLASSES.value,
        storage="raw" if _STORAGE.value == "raw" else "jpeg")
    return tfds_builders.ProceduralMotion(config=cfg, data_dir=data_dir)
  if not _CLASS_NAMES.value:
    raise ValueError("--class_names is required with --builder=manifest")
  cfg = tfds_builders.VideoManifestConfig(
      name=_NAME.value, manifests=_parse_manifests(_MANIFEST.value), class_names=_CLASS_NAMES.value,
      video_root=_VIDEO_ROOT.value, target_fps=_TARGET_FPS.value, short_side=_SHORT_SIDE.value,
      storage=_STORAGE.value, on_bad_input=_ON_BAD_INPUT.value)
  return tfds_builders.VideoManifest(config=cfg, data_dir=data_dir)


def summary(builder) -> str:
  """Videos per split, stored size, skipped items by reason (and the first few problems)."""
  info = builder.info
  lines = [f"prepared {info.full_name} in {builder.data_dir}"]
  for name, split in info.splits.items():
    lines.append(f"  {name:>8}: {split.num_examples} videos ({split.num_bytes / 2**20:.1f} MiB)")
  skipped = getattr(builder, "skipped", {})
  total = sum(skipped.values())
  lines.append(f"  skipped: {total}" + (f" ({dict(skipped)})" if total else ""))
  for p in getattr(builder, "problems", [])[:10]:
    lines.append(f"    {p}")
  return "\n".join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  builder = make_builder()
  builder.download_and_prepare(file_format="array_record")  # tfds shows a progress bar per split
  print(summary(builder))
  logging.info("done")


if __name__ == "__main__":
  app.run(main)
