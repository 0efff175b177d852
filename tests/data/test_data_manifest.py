"""Manifests: parsing, labels by index or name, time windows, and every malformed-line case (file:line errors)."""

import pytest

from vmp_jax.data import manifest as m
from vmp_jax.data import pipeline
from vmp_jax.data.video_sources import ClipTransform, ManifestSource

CLASSES = ["grey", "xy", "short"]


def _write(tmp_path, text, name="m.csv"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_parse_csv_tsv_names_and_windows(tmp_path):
    path = _write(tmp_path, "path,label\n# comment\n\na.mp4,1\nsub/b.mp4,short,1.5,3\n/abs/c.mp4\t0\t0\t2.5\n")
    records, problems = m.read_manifest(path, CLASSES)
    assert problems == []
    assert [(r.label, r.start_sec, r.end_sec) for r in records] == [(1, 0.0, None), (2, 1.5, 3.0), (0, 0.0, 2.5)]
    assert records[0].path == str(tmp_path / "a.mp4") and records[2].path == "/abs/c.mp4"
    assert records[1].where == f"{path}:5"
    records, _ = m.read_manifest(path, CLASSES, video_root="/data")
    assert records[0].path == "/data/a.mp4"


@pytest.mark.parametrize(
    "line,match",
    [
        ("a.mp4,3", r"label 3 out of range \[0, 3\)"),
        ("a.mp4,-1", "out of range"),
        ("a.mp4,walking", "neither an integer nor a class name"),
        ("a.mp4", "expected 'path,label'"),
        ("a.mp4,1,2", "expected 'path,label'"),
        ("a.mp4,1,x,2", "not numbers"),
        ("a.mp4,1,3,2", "start_sec < end_sec"),
        (",1", "empty path"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, line, match):
    path = _write(tmp_path, f"ok.mp4,0\n{line}\nok2.mp4,1\n")
    with pytest.raises(ValueError, match=match) as e:
        m.read_manifest(path, CLASSES)
    assert f"{path}:2:" in str(e.value)
    records, problems = m.read_manifest(path, CLASSES, on_bad_input="skip")
    assert [r.label for r in records] == [0, 1] and len(problems) == 1  # skipped and counted, never relabelled


def test_missing_files_and_class_names(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        m.read_manifest(str(tmp_path / "nope.csv"), CLASSES)
    with pytest.raises(FileNotFoundError, match="classes.txt"):
        m.read_class_names(str(tmp_path / "classes.txt"))
    with pytest.raises(ValueError, match="duplicate"):
        m.read_class_names(_write(tmp_path, "a\nb\na\n", "c.txt"))


def _manifest(videos, tmp_path, names):
    path = tmp_path / "bad.csv"
    path.write_text("".join(f"{n},0\n" for n in names))
    records, _ = m.read_manifest(str(path), CLASSES, video_root=str(videos))
    return ManifestSource(records), str(path)


@pytest.mark.parametrize(
    "name,error",
    [
        ("missing.mp4", FileNotFoundError),
        ("corrupt.mp4", ValueError),
        ("empty.mp4", ValueError),
        ("truncated.mp4", ValueError),
        ("truncated.mkv", ValueError),
        ("classes.txt", ValueError),
    ],
)
def test_bad_video_raises_with_file_and_line_or_is_skipped(videos, tmp_path, name, error):
    src, path = _manifest(videos, tmp_path, ["grey.mp4", name])
    # truncated.mkv opens and decodes its first frames; a late clip start shows the truncation.
    strict = ClipTransform(num_frames=3, sampling_rate=5, train=False, crop_size=32, eval_short_side=40, num_clips=2)
    item = {**src[1], "clip_index": 1}
    with pytest.raises(error) as e:
        strict(item, None)
    assert f"{path}:2" in str(e.value) and name in str(e.value)
    lenient = ClipTransform(
        num_frames=3, sampling_rate=5, train=False, crop_size=32, eval_short_side=40, num_clips=2, on_bad_input="skip"
    )
    assert lenient(item, None) is None
    assert sum(v for k, v in lenient.stats.items() if k.startswith("skipped")) == 1
    # In the train pipeline the bad video is dropped; every batch holds only the good one.
    train_t = ClipTransform(
        num_frames=3, sampling_rate=5, train=True, crop_size=32, train_scale=(40, 40), on_bad_input="skip"
    )
    batch = next(iter(pipeline.train_dataset(src, batch_size=2, seed=0, transform=train_t)))
    assert batch["frames"].shape == (2, 3, 32, 32, 3) and batch["label"].tolist() == [0, 0]


def test_skips_are_logged_per_epoch_and_worker_errors_name_the_file(videos, tmp_path, caplog):
    src, path = _manifest(videos, tmp_path, ["grey.mp4", "corrupt.mp4", "xy.mkv"])
    lenient = ClipTransform(
        num_frames=2, sampling_rate=1, train=True, crop_size=32, train_scale=(40, 40), on_bad_input="skip"
    )
    with caplog.at_level("WARNING"):
        pipeline.take(pipeline.train_dataset(src, batch_size=2, seed=0, transform=lenient), 3)  # 6 good = 3 epochs
    epoch_logs = [r.getMessage() for r in caplog.records if "train data: epoch 0:" in r.getMessage()]
    assert len(epoch_logs) == 1 and "1 of 3 items seen in this process skipped" in epoch_logs[0]
    assert "skipped_VideoError" in epoch_logs[0]
    strict = ClipTransform(num_frames=2, sampling_rate=1, train=True, crop_size=32, train_scale=(40, 40))
    it = iter(pipeline.train_dataset(src, batch_size=3, seed=0, transform=strict, num_workers=1))
    with pytest.raises(Exception) as e:
        next(it)
    assert f"{path}:2" in str(e.value) and "corrupt.mp4" in str(e.value)
