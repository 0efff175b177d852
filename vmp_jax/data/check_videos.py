r"""Decode every video of manifests to the end (of its time window) and list the ones that would fail in training.

    python -m vmp_jax.data.check_videos --class_names=manifests/gym99/classes.txt \
        --video_root=/data/finegym/clips manifests/gym99/train.csv manifests/gym99/test.csv

A file whose header is intact but whose later frames are cut decodes its first frames, so training with
data.on_bad_input='error' fails only when a clip reaches the missing part, possibly hours in. This finds such
files, and missing, empty or undecodable ones, up front: one line per problem, 'manifest:line: path: what',
then a summary; the exit status is 1 if there was any. (`python -m vmp_jax.data.prepare` decodes every frame
too, so it stops at, or with --on_bad_input=skip lists, the same files.)
"""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Sequence

from absl import flags

from vmp_jax import cli
from vmp_jax.data import manifest as manifest_lib
from vmp_jax.data import video


def _define_flags(flag_values: flags.FlagValues, argv=None) -> None:
    define = dict(flag_values=flag_values)
    flags.DEFINE_string(
        "class_names", None, "Class-names file of the manifests (one per line).", required=True, **define
    )
    flags.DEFINE_string("video_root", "", "Prefix of relative manifest paths ('' = manifest's folder).", **define)
    flags.DEFINE_integer("num_threads", os.cpu_count() or 1, "Videos decoded at once.", **define)


def check_record(record: manifest_lib.VideoRecord) -> str | None:
    """None if every frame of the record's window decodes, else 'manifest:line: what is wrong'."""
    try:
        video.check_decodes(record.path, start_sec=record.start_sec, end_sec=record.end_sec)
    except (FileNotFoundError, video.VideoError) as e:
        return f"{record.where}: {e}"
    return None


def check_manifests(
    paths: list[str], class_names: list[str], *, video_root: str = "", num_threads: int = 1
) -> tuple[int, list[str]]:
    """(videos checked, problems): malformed lines, then the videos that fail, in manifest order."""
    records, problems = [], []
    for path in paths:
        found, malformed = manifest_lib.read_manifest(path, class_names, video_root=video_root, on_bad_input="skip")
        records += found
        problems += malformed
    with concurrent.futures.ThreadPoolExecutor(max(num_threads, 1)) as pool:  # PyAV decodes without the GIL
        problems += [p for p in pool.map(check_record, records) if p]
    return len(records), problems


def _command(argv: list[str], flag_values: flags.FlagValues) -> int:
    if len(argv) < 2:
        raise cli.UsageError("expected one or more manifest files after the flags")
    names = manifest_lib.read_class_names(flag_values.class_names)
    count, problems = check_manifests(
        argv[1:], names, video_root=flag_values.video_root, num_threads=flag_values.num_threads
    )
    for p in problems:
        cli.say(p)
    cli.say(f"checked {count} videos in {len(argv) - 1} manifest(s): {len(problems)} problem(s)")
    return 1 if problems else 0


def main(argv: Sequence[str]) -> int:
    """`python -m vmp_jax.data.check_videos ARGV...` in this process; returns the exit status (1: problems found)."""
    return cli.call(_command, _define_flags, argv, prog="python -m vmp_jax.data.check_videos")


if __name__ == "__main__":
    cli.run(_command, _define_flags)
