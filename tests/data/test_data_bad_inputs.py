"""Splits made only of unreadable files, with data.on_bad_input='skip': a clear error naming the manifest."""

import itertools
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import pytest
from videogen import manifest_config

from vmp_jax import data
from vmp_jax.data import pipeline


def _unreadable_manifest(videos, path):
    """4 unreadable items: a missing, a zero-byte, a non-video and a truncated file."""
    path.write_text(f"missing.mp4,0\n{videos}/empty.mp4,0\n{videos}/classes.txt,1\n{videos}/truncated.mp4,2\n")
    return str(path)


def _config(videos, train_manifest, eval_manifest, **kw):
    options = dict(on_bad_input="skip", sampling_rate=1, train_scale=(40, 40), eval_num_clips=1, eval_num_crops=1)
    return manifest_config(videos, train_manifest, eval_manifest, **{**options, **kw})


@pytest.mark.parametrize("num_workers", [0, 1])
def test_all_unreadable_train_split_raises_naming_the_manifest(videos, tmp_path, num_workers):
    train = _unreadable_manifest(videos, tmp_path / "train.csv")
    (tmp_path / "test.csv").write_text(f"{videos}/grey.mp4,0\n")
    cfg = _config(videos, train, str(tmp_path / "test.csv"), num_workers=num_workers)
    s = data.make_datasets(cfg, num_frames=3, global_batch_size=2, eval_batch_size=2, seed=0)
    with pytest.raises(pipeline.UnreadableSplitError) as e:
        next(iter(s.train))
    message = str(e.value)
    assert train in message and "all 4 items were tried" in message
    assert "skipped_FileNotFoundError" in message and "skipped_VideoError" in message


def test_mostly_unreadable_train_split_still_trains(videos, tmp_path):
    train = tmp_path / "train.csv"
    _unreadable_manifest(videos, tmp_path / "bad.csv")
    train.write_text((tmp_path / "bad.csv").read_text() * 3 + f"{videos}/xy.mkv,1\n")  # 1 readable of 13
    (tmp_path / "test.csv").write_text(f"{videos}/grey.mp4,0\n")
    s = data.make_datasets(
        _config(videos, str(train), str(tmp_path / "test.csv")),
        num_frames=3,
        global_batch_size=2,
        eval_batch_size=2,
        seed=0,
    )
    it = iter(s.train)
    labels = np.concatenate([next(it)["label"] for _ in range(3)])  # 3 batches of the one readable video: 3+ epochs
    assert labels.tolist() == [1] * 6


def test_all_unreadable_eval_split_names_the_manifest(videos, tmp_path):
    (tmp_path / "train.csv").write_text(f"{videos}/grey.mp4,0\n{videos}/xy.mkv,1\n")
    test = _unreadable_manifest(videos, tmp_path / "test.csv")
    with pytest.raises(pipeline.UnreadableSplitError, match=f"{test}: 4 videos.*no item could be read"):
        data.make_datasets(
            _config(videos, str(tmp_path / "train.csv"), test),
            num_frames=3,
            global_batch_size=2,
            eval_batch_size=2,
            seed=0,
        )


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _train_py(workdir, train_manifest, eval_manifest, videos, *extra_flags):
    """`python train.py` on the manifests (skip policy), tiny model; output lines arrive on the returned queue."""
    flags = [
        "--config.model.backbone=tiny",
        "--config.num_frames=4",
        "--config.batch_size=2",
        "--config.eval_batch_size=2",
        "--config.progress_bar=False",
        "--config.num_train_steps=4",
        "--config.data.source=video_manifest",
        f"--config.data.train_manifest={train_manifest}",
        f"--config.data.eval_manifest={eval_manifest}",
        f"--config.data.class_names={videos / 'classes.txt'}",
        f"--config.data.video_root={videos}",
        "--config.data.on_bad_input=skip",
        "--config.data.sampling_rate=1",
        "--config.data.train_scale=(40, 40)",
        "--config.data.crop_size=32",
        "--config.data.eval_short_side=40",
        "--config.data.eval_num_clips=1",
        "--config.data.eval_num_crops=1",
        *extra_flags,
    ]
    env = dict(
        os.environ,
        JAX_NUM_CPU_DEVICES="1",
        PYTHONPATH=ROOT,
        PYTHONUNBUFFERED="1",
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_COMPILATION_CACHE_DIR=os.path.join(tempfile.gettempdir(), "vmp_jax_test_jax_cache"),
    )
    proc = subprocess.Popen(
        [sys.executable, "train.py", "--workdir", str(workdir), *flags],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(line) for line in itertools.chain(proc.stdout, [None])], daemon=True
    ).start()
    return proc, lines


def _read_until(lines, proc, text, timeout):
    out, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            continue
        if line is None:  # the process ended
            break
        out.append(line)
        if text in out[-1]:
            return "".join(out)
    proc.kill()
    raise AssertionError(f"no {text!r} within {timeout} s; output:\n{''.join(out)[-3000:]}")


def test_train_py_on_an_unreadable_train_split_stops_naming_the_manifest(videos, tmp_path):
    train = _unreadable_manifest(videos, tmp_path / "train.csv")
    (tmp_path / "test.csv").write_text(f"{videos}/grey.mp4,0\n")
    proc, lines = _train_py(tmp_path / "run", train, tmp_path / "test.csv", videos)
    try:
        status = proc.wait(timeout=60)
    finally:
        proc.kill()
    out = "".join(iter(lines.get, None))
    assert status == 2, out[-3000:]  # a user error: one line, no traceback
    assert f"error: train data: no item of ManifestSource({train}: 4 videos) could be read" in out
    assert "Traceback" not in out


@pytest.mark.parametrize("num_workers", [0, 1])
def test_sigterm_while_waiting_for_data_stops_at_once(videos, tmp_path, num_workers):
    junk = tmp_path / "junk.mp4"  # random bytes: every demuxer probes it before it fails, ~0.1 s a try
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 2_000_000, dtype=np.uint8).tobytes())
    (tmp_path / "train.csv").write_text(f"{junk},0\n" * 500)  # a slow stream: ~a minute to try them all
    (tmp_path / "test.csv").write_text(f"{videos}/grey.mp4,0\n")
    proc, lines = _train_py(
        tmp_path / "run",
        tmp_path / "train.csv",
        tmp_path / "test.csv",
        videos,
        "--config.data.read_threads=1",
        f"--config.data.num_workers={num_workers}",
    )
    try:
        _read_until(lines, proc, "skipping", timeout=120)  # the trainer now waits for its first batch
        proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        out = _read_until(lines, proc, "Stopped by signal 15 at step 0; no step since the start, nothing saved", 20)
        assert proc.wait(timeout=20) == 0
        assert time.monotonic() - signalled < 10, out  # grain left alone waits 25 s per worker, or forever
    finally:
        proc.kill()
    assert not os.path.exists(tmp_path / "run" / "checkpoints" / "0")
