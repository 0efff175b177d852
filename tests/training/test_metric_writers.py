"""Metric files of a resumed run: records past the restored step, and records cut short, are removed."""

import os

from tensorboardX.proto import event_pb2

from vmp_jax.training import metric_writers
from vmp_jax.training.metric_writers import MetricWriter, read_metrics, read_tensorboard_scalars


def write_steps(workdir, steps, initial_step=0):
    with MetricWriter(workdir, total_steps=10, initial_step=initial_step, progress_bar=False) as writer:
        for step in steps:
            writer.write(step, "train", {"loss": 1.0 / step})


def test_resumed_writer_removes_records_past_its_step_and_torn_ones(tmp_path, capsys):
    workdir = str(tmp_path)
    write_steps(workdir, range(1, 6))
    # a kill while writing: half a JSON line and half a TensorBoard record
    with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
        f.write('{"step": 6, "split": "tr')
    (events,) = os.listdir(os.path.join(workdir, "tensorboard"))
    with open(os.path.join(workdir, "tensorboard", events), "ab") as f:
        f.write((64).to_bytes(8, "little") + b"\0" * 20)
    write_steps(workdir, [4, 5], initial_step=3)
    assert [(r["step"], r["loss"]) for r in read_metrics(workdir)] == [(s, 1.0 / s) for s in (1, 2, 3, 4, 5)]
    assert [(tag, step) for tag, step, _ in read_tensorboard_scalars(workdir)] == [
        ("train/loss", s) for s in (1, 2, 3, 4, 5)
    ]
    # 2 JSON lines past step 3 and the torn one; 2 events past step 3 and the torn record
    assert "Removed 6 metric records past step 3" in capsys.readouterr().out
    # the new event file starts with the purge event, for a TensorBoard that had read the removed events
    second = sorted(os.listdir(os.path.join(workdir, "tensorboard")))[1]
    starts = [
        event_pb2.Event.FromString(payload)
        for _, payload in metric_writers._event_records(os.path.join(workdir, "tensorboard", second))
    ]
    assert any(e.session_log.status == event_pb2.SessionLog.START and e.step == 4 for e in starts)


def test_rewind_leaves_files_alone_when_nothing_is_past_the_step(tmp_path):
    workdir = str(tmp_path)
    write_steps(workdir, range(1, 4))
    before = {
        name: os.stat(os.path.join(workdir, "tensorboard", name)).st_ino
        for name in os.listdir(os.path.join(workdir, "tensorboard"))
    }
    inode = os.stat(os.path.join(workdir, "metrics.jsonl")).st_ino
    assert metric_writers.rewind(workdir, 3) == 0
    assert os.stat(os.path.join(workdir, "metrics.jsonl")).st_ino == inode
    assert {name: os.stat(os.path.join(workdir, "tensorboard", name)).st_ino for name in before} == before
