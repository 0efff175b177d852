r"""Converters from official split/annotation files to manifests (manifest.py) plus a class-names file.

  python -m vmp_jax.data.splits ucf101 --annotations=ucfTrainTestlist --out=manifests/ucf101 [--split=1]
  python -m vmp_jax.data.splits hmdb51 --annotations=testTrainMulti_7030_splits --out=manifests/hmdb51 [--split=1]
  python -m vmp_jax.data.splits gym99 --annotations=finegym_dir --out=manifests/gym99 \
      [--annotation_json=finegym_annotation_info_v1.1.json --video_ext=.mp4]   # without it: pre-cut clips
  python -m vmp_jax.data.splits gym288 ...                                   # the same, 288 classes
  python -m vmp_jax.data.splits mpii_cooking2 --annotations=groundtruth.csv --classes=classes67.txt \
      --test_subjects=8,10,16,17,18,19,20 --out=manifests/mpii_cooking2 [--fps=29.4 --video_ext=.avi]
  python -m vmp_jax.data.splits mpii_cooking2_official --annotations=groundtruth.csv --classes=classes67.txt \
      --setup=experimentalSetup --out=manifests/mpii_cooking2_official   # the data set's split, cam-002, + val.csv

Each writes OUT/classes.txt and OUT/{train,test}.csv with paths relative to the video folder; pass that folder
as --video_root to prepare (or data.video_root). Every parse error names the file and line.
"""

from __future__ import annotations

import collections
import csv
import json
import os
import re
from collections.abc import Sequence

from absl import flags

from vmp_jax import cli
from vmp_jax.data import manifest as manifest_lib


def _lines(path: str):
    """(line number, stripped text) of the non-empty lines of a file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"annotation file not found: {path}")
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                yield number, line.strip()


# ----------------------------------------------------------------------------------------------------- UCF101
def ucf101(annotations_dir: str, split: int = 1):
    """classInd.txt ('1 ApplyEyeMakeup'), trainlist0k.txt ('Class/v_x.avi 1'), testlist0k.txt ('Class/v_x.avi').

    -> (class names, {'train': [(path, label)], 'test': [...]}); labels are classInd - 1; the folder of each path
    must be its class (checked).
    """
    names = []
    for number, line in _lines(os.path.join(annotations_dir, "classInd.txt")):
        fields = line.split()
        if len(fields) != 2 or not fields[0].isdigit() or int(fields[0]) != len(names) + 1:
            raise ValueError(
                f"{annotations_dir}/classInd.txt:{number}: expected '{len(names) + 1} ClassName', got {line!r}"
            )
        names.append(fields[1])
    out = {}
    for split_name, stem in (("train", "trainlist"), ("test", "testlist")):
        path = os.path.join(annotations_dir, f"{stem}{split:02d}.txt")
        rows = []
        for number, line in _lines(path):
            fields = line.split()
            video, folder = fields[0], fields[0].split("/")[0]
            if folder not in names:
                raise ValueError(f"{path}:{number}: class folder {folder!r} is not in classInd.txt")
            label = names.index(folder)
            if len(fields) > 1 and int(fields[1]) - 1 != label:
                raise ValueError(
                    f"{path}:{number}: label {fields[1]} disagrees with the folder {folder!r} (classInd {label + 1})"
                )
            rows.append((video, label))
        out[split_name] = rows
    return names, out


# ----------------------------------------------------------------------------------------------------- HMDB51
def hmdb51(annotations_dir: str, split: int = 1):
    """<class>_test_split<k>.txt lines 'video.avi 1|2|0' (1 train, 2 test, 0 unused); videos are <class>/video.avi."""
    pattern = re.compile(rf"^(.+)_test_split{split}\.txt$")
    files = sorted(f for f in os.listdir(annotations_dir) if pattern.match(f)) if os.path.isdir(annotations_dir) else []
    if not files:
        raise FileNotFoundError(f"no *_test_split{split}.txt files in {annotations_dir}")
    names = [pattern.match(f).group(1) for f in files]
    out = {"train": [], "test": []}
    for label, (name, f) in enumerate(zip(names, files)):
        path = os.path.join(annotations_dir, f)
        for number, line in _lines(path):
            fields = line.split()
            if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
                raise ValueError(f"{path}:{number}: expected 'video.avi 0|1|2', got {line!r}")
            if fields[1] != "0":
                out["train" if fields[1] == "1" else "test"].append((f"{name}/{fields[0]}", label))
    return names, out


# --------------------------------------------------------------------------------------------------- FineGym
_GYM_CATEGORY = re.compile(r"^Clabel:\s*(\d+);\s*set:\s*(\d+);\s*Glabel:\s*(\d+);\s*(.*)$")
_GYM_ID = re.compile(r"^(.+)_(E_\d+_\d+)_(A_\d+_\d+)$")


def _gym_classes(path: str) -> list[str]:
    """gymNNN_categories.txt lines 'Clabel: 0; set: 1; Glabel: 1; (VT) round-off, ...' -> names by Clabel."""
    names = {}
    for number, line in _lines(path):
        m = _GYM_CATEGORY.match(line)
        if not m:
            raise ValueError(f"{path}:{number}: expected 'Clabel: N; set: S; Glabel: G; NAME', got {line!r}")
        names[int(m.group(1))] = m.group(4).strip()
    if sorted(names) != list(range(len(names))):
        raise ValueError(f"{path}: Clabels are not 0..{len(names) - 1}")
    return [names[i] for i in range(len(names))]


def finegym(annotations_dir: str, num_classes: int, annotation_json: str = "", video_ext: str = ".mp4"):
    """Gym99/Gym288 element lists 'VIDEOID_E_xxx_yyy_A_aaaa_bbbb LABEL'.

    Without annotation_json: pre-cut clips, path 'ID.mp4'. With it: path 'VIDEOID{video_ext}' and the element's
    absolute time window = event start + the segment's first/last timestamps (seconds).
    """
    stem = f"gym{num_classes}"
    names = _gym_classes(os.path.join(annotations_dir, f"{stem}_categories.txt"))
    if len(names) != num_classes:
        raise ValueError(f"{stem}_categories.txt has {len(names)} classes; expected {num_classes}")
    info = None
    if annotation_json:
        if not os.path.isfile(annotation_json):
            raise FileNotFoundError(f"FineGym annotation JSON not found: {annotation_json}")
        with open(annotation_json, encoding="utf-8") as f:
            info = json.load(f)
    files = {"train": f"{stem}_train_element_v1.1.txt", "test": f"{stem}_val_element.txt"}
    out = {}
    for split_name, fname in files.items():
        path = os.path.join(annotations_dir, fname)
        rows = []
        for number, line in _lines(path):
            fields = line.split()
            if len(fields) != 2 or not fields[1].isdigit() or int(fields[1]) >= num_classes:
                raise ValueError(
                    f"{path}:{number}: expected 'ELEMENT_ID LABEL' with LABEL < {num_classes}, got {line!r}"
                )
            element, label = fields[0], int(fields[1])
            if info is None:
                rows.append((f"{element}.mp4", label))
                continue
            m = _GYM_ID.match(element)
            if not m:
                raise ValueError(f"{path}:{number}: element id {element!r} is not VIDEOID_E_s_e_A_s_e")
            vid, event, action = m.groups()
            try:
                ev = info[vid][event]
                seg = ev["segments"][action]["timestamps"]
                event_start = float(ev["timestamps"][0][0])
            except (KeyError, IndexError, TypeError):
                raise ValueError(f"{path}:{number}: {element} not found in {annotation_json}") from None
            rows.append(
                (
                    f"{vid}{video_ext}",
                    label,
                    round(event_start + float(seg[0][0]), 3),
                    round(event_start + float(seg[-1][1]), 3),
                )
            )
        out[split_name] = rows
    return names, out


# --------------------------------------------------------------------------------------------- MPII Cooking 2
def mpii_cooking2(
    groundtruth_csv: str, classes_file: str, test_subjects: list[int], fps: float = 29.4, video_ext: str = ".avi"
):
    """Single-label clips from a detection ground-truth CSV 'subject,file_name,start_frame,end_frame,activity_id'.

    classes_file lists the kept classes, one 'ACTIVITY_ID NAME' per line (the 67-class setting: the activities
    the reference code keeps); clips of other activities are dropped. Subjects in test_subjects form the test
    split. Times are frame / fps.
    """
    keep = {}
    for number, line in _lines(classes_file):
        fields = line.split(maxsplit=1)
        if len(fields) != 2 or not fields[0].isdigit():
            raise ValueError(f"{classes_file}:{number}: expected 'ACTIVITY_ID NAME', got {line!r}")
        keep[int(fields[0])] = fields[1]
    ids = list(keep)
    out = {"train": [], "test": []}
    dropped = collections.Counter()
    if not os.path.isfile(groundtruth_csv):
        raise FileNotFoundError(f"ground-truth CSV not found: {groundtruth_csv}")
    with open(groundtruth_csv, encoding="utf-8", newline="") as f:
        for number, row in enumerate(csv.reader(f), start=1):
            if not row or not row[0].strip() or not row[0].strip().lstrip("s").isdigit():
                continue  # blank or header
            try:
                subject, name = int(row[0].strip().lstrip("s")), row[1].strip()
                start, end, activity = int(row[2]), int(row[3]), int(row[4])
            except (IndexError, ValueError):
                raise ValueError(
                    f"{groundtruth_csv}:{number}: expected 'subject,file_name,start_frame,end_frame,"
                    f"activity_id', got {row!r}"
                ) from None
            if end <= start:
                raise ValueError(f"{groundtruth_csv}:{number}: end_frame {end} <= start_frame {start}")
            if activity not in keep:
                dropped[activity] += 1
                continue
            out["test" if subject in test_subjects else "train"].append(
                (f"{name}{video_ext}", ids.index(activity), round(start / fps, 3), round(end / fps, 3))
            )
    return [keep[i] for i in ids], out


OFFICIAL_SEQUENCE_FILES = {"train": "sequencesTrainAttr.txt", "val": "sequencesVal.txt", "test": "sequencesTest.txt"}
OFFICIAL_CAMERA = "cam-002"


def mpii_cooking2_official(
    groundtruth_csv: str, classes_file: str, setup_dir: str, fps: float = 29.4, video_ext: str = ".avi"
):
    """The split of the data set's `experimentalSetup` folder, as the seed paper's code (q1xiangchen/VMPs
    `mpii_split.py`) uses it: sequences (first field of each line, e.g. 's08-d02') of sequences{TrainAttr,Val,Test}.txt
    -> train/val/test, camera cam-002 only, labels = the kept classes' names sorted. Clips as `mpii_cooking2`.
    """
    names, rows = mpii_cooking2(groundtruth_csv, classes_file, [], fps, video_ext)
    sequence_split = {}
    for split_name, file_name in OFFICIAL_SEQUENCE_FILES.items():
        path = os.path.join(setup_dir, file_name)
        for _, line in _lines(path):
            sequence_split[f"{line.split()[0]}-{OFFICIAL_CAMERA}"] = split_name
    ordered = sorted(names)
    out = {split_name: [] for split_name in OFFICIAL_SEQUENCE_FILES}
    for video, label, start, end in rows["train"]:
        split_name = sequence_split.get(video[: -len(video_ext)] if video_ext else video)
        if split_name is not None:  # other cameras and sequences in no list are left out
            out[split_name].append((video, ordered.index(names[label]), start, end))
    return ordered, out


def write(out_dir: str, names: list[str], splits: dict) -> dict[str, int]:
    """Write OUT/classes.txt and OUT/<split>.csv.  -> {split: number of lines}."""
    os.makedirs(out_dir, exist_ok=True)
    manifest_lib.write_class_names(os.path.join(out_dir, "classes.txt"), names)
    for split_name, rows in splits.items():
        manifest_lib.write_manifest(os.path.join(out_dir, f"{split_name}.csv"), rows)
    return {k: len(v) for k, v in splits.items()}


def _define_flags(flag_values: flags.FlagValues, argv=None) -> None:
    define = dict(flag_values=flag_values)
    flags.DEFINE_string(
        "annotations", None, "Official annotation folder (or CSV for mpii_cooking2).", required=True, **define
    )
    flags.DEFINE_string("out", None, "Output folder for classes.txt, train.csv, test.csv.", required=True, **define)
    flags.DEFINE_integer("split", 1, "ucf101/hmdb51: official split 1..3.", **define)
    flags.DEFINE_string("annotation_json", "", "FineGym: cut full videos by this JSON's times.", **define)
    flags.DEFINE_string("video_ext", "", "Extension of full videos (FineGym .mp4, MPII .avi).", **define)
    flags.DEFINE_string("classes", "", "mpii_cooking2: 'ACTIVITY_ID NAME' lines of the kept classes.", **define)
    flags.DEFINE_list("test_subjects", [], "mpii_cooking2: subject numbers of the test split.", **define)
    flags.DEFINE_float("fps", 29.4, "mpii_cooking2: frame rate of the frame numbers in the CSV.", **define)
    flags.DEFINE_string("setup", "", "mpii_cooking2_official: the data set's experimentalSetup folder.", **define)


DATASETS = ("ucf101", "hmdb51", "gym99", "gym288", "mpii_cooking2", "mpii_cooking2_official")


def _command(argv: list[str], f: flags.FlagValues) -> None:
    if len(argv) != 2 or argv[1] not in DATASETS:
        raise cli.UsageError(f"expected one DATASET of {DATASETS} before the flags, got {argv[1:]}")
    name = argv[1]
    if name == "ucf101":
        names, splits = ucf101(f.annotations, f.split)
    elif name == "hmdb51":
        names, splits = hmdb51(f.annotations, f.split)
    elif name in ("gym99", "gym288"):
        names, splits = finegym(f.annotations, int(name[3:]), f.annotation_json, f.video_ext or ".mp4")
    elif name == "mpii_cooking2_official":
        if not f.classes or not f.setup:
            raise cli.UsageError("mpii_cooking2_official needs --classes and --setup")
        names, splits = mpii_cooking2_official(f.annotations, f.classes, f.setup, f.fps, f.video_ext or ".avi")
    else:
        if not f.classes or not f.test_subjects:
            raise cli.UsageError("mpii_cooking2 needs --classes and --test_subjects")
        names, splits = mpii_cooking2(
            f.annotations, f.classes, [int(s) for s in f.test_subjects], f.fps, f.video_ext or ".avi"
        )
    counts = write(f.out, names, splits)
    cli.say(
        f"{name}: {len(names)} classes; " + ", ".join(f"{k}: {v} videos" for k, v in counts.items()) + f" -> {f.out}"
    )


def main(argv: Sequence[str]) -> int:
    """`python -m vmp_jax.data.splits ARGV...` in this process; returns the exit status (2: a user error)."""
    return cli.call(_command, _define_flags, argv, prog="python -m vmp_jax.data.splits")


if __name__ == "__main__":
    cli.run(_command, _define_flags)
