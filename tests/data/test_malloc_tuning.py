"""The data processes' allocator tuning (malloc_tuning.py): on where glibc runs, off with VMP_MALLOC_TUNING=0."""

import os
import platform
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CODE = (
    "from vmp_jax.data import malloc_tuning\n"
    "first = malloc_tuning.keep_large_buffers_in_heap()\n"
    "print(first, malloc_tuning.keep_large_buffers_in_heap())\n"
    "from vmp_jax.data.video_sources import ClipTransform\n"  # the clip transform tunes the process it runs in
    "ClipTransform(num_frames=2, sampling_rate=1, train=True, crop_size=8, train_scale=(8, 8))\n"
    "print(malloc_tuning._tuned_in is not None)\n"
)


def _run(**env):
    out = subprocess.run(
        [sys.executable, "-c", CODE],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_tuned_once_per_process_and_off_on_request():
    assert _run() == ["True", "True", "True"]
    assert _run(VMP_MALLOC_TUNING="0") == ["False", "False", "False"]
