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
from collections.abc import Sequence

from absl import flags, logging

from vmp_jax import cli
from vmp_jax.data import tfds_builders


def _define_flags(flag_values: flags.FlagValues, argv=None) -> None:
    define = dict(flag_values=flag_values)
    flags.DEFINE_enum("builder", "manifest", ["manifest", "procedural"], "What to prepare.", **define)
    flags.DEFINE_string(
        "name", None, "Builder config name: the dataset's folder under data_dir/<builder>/.", required=True, **define
    )
    flags.DEFINE_string("data_dir", "", "TFDS data_dir ('' = ~/tensorflow_datasets).", **define)
    flags.DEFINE_multi_string("manifest", [], "SPLIT=PATH of a manifest CSV/TSV; repeat per split.", **define)
    flags.DEFINE_string("class_names", "", "Class-names file (one per line).", **define)
    flags.DEFINE_string("video_root", "", "Prefix of relative manifest paths ('' = manifest's folder).", **define)
    flags.DEFINE_float("target_fps", 0.0, "Resample to this frame rate (0: keep the container's).", **define)
    flags.DEFINE_integer(
        "short_side",
        256,
        "Stored short side: the training short side, i.e. the upper end of data.train_scale (X3D-S recipes: 228; "
        "the 256-320 recipes: 320) and >= data.eval_short_side. Larger only slows reading; smaller upsamples.",
        **define,
    )
    flags.DEFINE_enum("storage", "jpeg", list(tfds_builders.STORAGES), "Per-frame storage.", **define)
    flags.DEFINE_enum(
        "on_bad_input",
        "error",
        ["error", "skip"],
        "Unreadable video or malformed line: stop with file:line, or skip and count.",
        **define,
    )
    flags.DEFINE_integer("num_train", 4096, "procedural: train clips.", **define)
    flags.DEFINE_integer("num_eval", 512, "procedural: eval clips.", **define)
    flags.DEFINE_integer("num_frames", 9, "procedural: frames per clip (T+1).", **define)
    flags.DEFINE_integer("size", 64, "procedural: height and width.", **define)
    flags.DEFINE_integer("num_classes", 4, "procedural: classes (motion directions).", **define)


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


def make_builder(f: flags.FlagValues):
    """The builder the flags `f` describe."""
    data_dir = os.path.expanduser(f.data_dir) or None
    if f.builder == "procedural":
        cfg = tfds_builders.ProceduralMotionConfig(
            name=f.name,
            num_train=f.num_train,
            num_eval=f.num_eval,
            num_frames=f.num_frames,
            height=f.size,
            width=f.size,
            num_classes=f.num_classes,
            storage="raw" if f.storage == "raw" else "jpeg",
        )
        return tfds_builders.ProceduralMotion(config=cfg, data_dir=data_dir)
    if not f.class_names:
        raise ValueError("--class_names is required with --builder=manifest")
    cfg = tfds_builders.VideoManifestConfig(
        name=f.name,
        manifests=_parse_manifests(f.manifest),
        class_names=f.class_names,
        video_root=f.video_root,
        target_fps=f.target_fps,
        short_side=f.short_side,
        storage=f.storage,
        on_bad_input=f.on_bad_input,
    )
    return tfds_builders.VideoManifest(config=cfg, data_dir=data_dir)


SHOWN_PROBLEMS = 10


def summary(builder) -> str:
    """Videos per split, stored size, skipped items by reason, the first SHOWN_PROBLEMS problems and how many more."""
    info = builder.info
    lines = [f"prepared {info.full_name} in {builder.data_dir}"]
    for name, split in info.splits.items():
        lines.append(f"  {name:>8}: {split.num_examples} videos ({split.num_bytes / 2**20:.1f} MiB)")
    skipped = getattr(builder, "skipped", {})
    total = sum(skipped.values())
    lines.append(f"  skipped: {total}" + (f" ({dict(skipped)})" if total else ""))
    problems = getattr(builder, "problems", [])
    lines += [f"    {p}" for p in problems[:SHOWN_PROBLEMS]]
    if len(problems) > SHOWN_PROBLEMS:
        lines.append(f"    ... and {len(problems) - SHOWN_PROBLEMS} more")
    return "\n".join(lines)


def _command(argv: list[str], flag_values: flags.FlagValues) -> None:
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments {argv[1:]}")
    builder = make_builder(flag_values)
    builder.download_and_prepare(file_format="array_record")  # tfds shows a progress bar per split
    cli.say(summary(builder))
    logging.info("done")


def main(argv: Sequence[str]) -> int:
    """`python -m vmp_jax.data.prepare ARGV...` in this process; returns the exit status (2: a user error)."""
    return cli.call(_command, _define_flags, argv, prog="python -m vmp_jax.data.prepare")


if __name__ == "__main__":
    cli.run(_command, _define_flags)
