"""check_videos: every listed video decoded to the end; truncated, missing and unreadable files named by line."""

import os
import subprocess
import sys

import pytest

from vmp_jax.data import check_videos, manifest, video
from vmp_jax.data.video_sources import ClipTransform

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAMES = ["grey", "xy", "short"]


def test_a_truncated_file_passes_early_clips_but_not_the_check(videos):
    # The reason for the check: its first frames decode, so training meets the cut only at a late clip.
    clip = ClipTransform(num_frames=3, sampling_rate=1, train=False, crop_size=32, eval_short_side=40)
    assert clip({"path": str(videos / "truncated.mkv"), "label": 1, "video_index": 0, "end_sec": 0.4}, None)
    assert video.count_decodable(str(videos / "truncated.mkv")) == (20, 6)  # the header promises 20 frames
    assert video.count_decodable(str(videos / "xy.mkv")) == (20, 20)
    assert video.count_decodable(str(videos / "grey.mp4"), start_sec=0.4, end_sec=0.8) == (10, 10)
    with pytest.raises(video.VideoError, match="truncated or corrupt: 6 of the 20 frames"):
        video.check_decodes(str(videos / "truncated.mkv"))


def test_check_manifests_names_exactly_the_bad_lines(videos, tmp_path):
    lines = [
        "grey.mp4,0",
        "xy.mkv,1",
        "truncated.mkv,1",
        "short.mp4,2",
        "missing.mp4,0",
        "empty.mp4,0",
        "classes.txt,0",
        "corrupt.mp4,1",
        "truncated.mp4,0",
        "grey.mp4,0,0.4,0.8",
        "truncated.mkv,1,0,0.4",
        "truncated.mkv,1,0.4,1.5",
        "bad line",
    ]
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "ok.csv").write_text("xy.mkv,xy\n")
    count, problems = check_videos.check_manifests(
        [str(tmp_path / "m.csv"), str(tmp_path / "ok.csv")], NAMES, video_root=str(videos), num_threads=2
    )
    assert count == 13  # the malformed line is not a video
    where = {p.split(": ")[0] for p in problems}
    assert where == {f"{tmp_path / 'm.csv'}:{n}" for n in (3, 5, 6, 7, 8, 9, 12, 13)}
    assert f"{tmp_path / 'm.csv'}:3: {videos / 'truncated.mkv'}: truncated or corrupt: 6 of the 20" in "\n".join(
        problems
    )


def test_command_line_exit_status_and_summary(videos, tmp_path):
    (tmp_path / "good.csv").write_text("grey.mp4,0\nxy.mkv,1\n")
    (tmp_path / "bad.csv").write_text("truncated.mkv,1\n")
    manifest.write_class_names(str(tmp_path / "classes.txt"), NAMES)
    run = lambda *m: subprocess.run(
        [
            sys.executable,
            "-m",
            "vmp_jax.data.check_videos",
            f"--class_names={tmp_path / 'classes.txt'}",
            f"--video_root={videos}",
            *m,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    good = run(str(tmp_path / "good.csv"))
    assert good.returncode == 0, good.stderr[-2000:]
    assert good.stdout.strip() == "checked 2 videos in 1 manifest(s): 0 problem(s)"
    bad = run(str(tmp_path / "good.csv"), str(tmp_path / "bad.csv"))
    assert bad.returncode == 1
    assert bad.stdout.splitlines()[0].startswith(f"{tmp_path / 'bad.csv'}:1: ")
    assert bad.stdout.splitlines()[-1] == "checked 3 videos in 2 manifest(s): 1 problem(s)"
    missing = run(str(tmp_path / "nope.csv"))  # a user error: one line, status 2
    assert missing.returncode == 2
    assert missing.stderr.strip().endswith(f"manifest file not found: {tmp_path / 'nope.csv'}")
