"""Manifest files: which videos, which labels, which time window.

A manifest is a CSV (or TSV, when the line contains a tab) with one video per line:
    path,label[,start_sec,end_sec]
`path` is absolute or relative to `video_root` (default: the manifest's folder); `label` is a 0-based class index
or a class name from the class-names file (one name per line, line i = class i). Blank lines and lines starting
with '#' are ignored, and so is a first line starting with 'path'. Errors name the manifest file and line.
"""

from __future__ import annotations

import csv
import dataclasses
import os

from absl import logging

SKIP_POLICIES = ("error", "skip")


@dataclasses.dataclass(frozen=True)
class VideoRecord:
    path: str
    label: int
    start_sec: float = 0.0
    end_sec: float | None = None  # None: to the end of the video
    where: str = ""  # 'manifest.csv:12', for error messages


def read_class_names(path: str) -> list[str]:
    """Class names, one per non-empty line; line i (0-based, counting only non-empty lines) is class i."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"class-names file not found: {path}")
    with open(path, encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip()]
    if not names:
        raise ValueError(f"{path}: no class names (expected one name per line)")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{path}: duplicate class names {duplicates}")
    return names


def write_class_names(path: str, names: list[str]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(f"{n}\n" for n in names))


def write_manifest(path: str, records) -> None:
    """Write records (VideoRecord or (path, label[, start, end]) tuples) as a CSV manifest."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        for r in records:
            if isinstance(r, VideoRecord):
                r = (r.path, r.label) + ((r.start_sec, r.end_sec) if r.end_sec is not None else ())
            w.writerow(r)


def _parse_line(fields: list[str], where: str, root: str, class_names: list[str]) -> VideoRecord:
    if len(fields) not in (2, 4):
        raise ValueError(
            f"{where}: expected 'path,label' or 'path,label,start_sec,end_sec', got {len(fields)} fields {fields}"
        )
    path, label = fields[0].strip(), fields[1].strip()
    if not path:
        raise ValueError(f"{where}: empty path")
    try:
        index = int(label)
    except ValueError:
        if label not in class_names:
            raise ValueError(
                f"{where}: label {label!r} is neither an integer nor a class name ({len(class_names)} classes)"
            ) from None
        index = class_names.index(label)
    if not 0 <= index < len(class_names):
        raise ValueError(f"{where}: label {index} out of range [0, {len(class_names)})")
    start, end = 0.0, None
    if len(fields) == 4:
        try:
            start, end = float(fields[2]), float(fields[3])
        except ValueError:
            raise ValueError(f"{where}: start_sec/end_sec {fields[2:]!r} are not numbers") from None
        if not 0 <= start < end:
            raise ValueError(f"{where}: expected 0 <= start_sec < end_sec, got {start}, {end}")
    return VideoRecord(os.path.join(root, path), index, start, end, where)


def read_manifest(
    path: str, class_names: list[str], *, video_root: str = "", on_bad_input: str = "error"
) -> tuple[list[VideoRecord], list[str]]:
    """Parse a manifest.  -> (records, problems): problems lists the skipped lines when on_bad_input='skip'."""
    if on_bad_input not in SKIP_POLICIES:
        raise ValueError(f"on_bad_input={on_bad_input!r}; expected one of {SKIP_POLICIES}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"manifest file not found: {path}")
    root = video_root or os.path.dirname(os.path.abspath(path))
    records, problems = [], []
    with open(path, encoding="utf-8", newline="") as f:
        lines = f.read().splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#") or (number == 1 and line.lower().startswith("path")):
            continue
        fields = next(csv.reader([line], delimiter="\t" if "\t" in line else ","))
        try:
            records.append(_parse_line(fields, f"{path}:{number}", root, class_names))
        except ValueError as e:
            if on_bad_input == "error":
                raise
            problems.append(str(e))
    if problems:
        logging.warning("%s: skipped %d malformed lines, e.g. %s", path, len(problems), problems[0])
    if not records:
        raise ValueError(f"{path}: no usable videos ({len(problems)} lines skipped)")
    return records, problems
