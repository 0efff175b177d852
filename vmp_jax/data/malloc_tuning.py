"""glibc's allocator, tuned for the data processes: multi-megabyte buffers reused from the heap, not mmapped anew.

glibc serves every allocation above its mmap threshold (128 KiB, raised on each free of a larger mmapped block to
that block's size) with a fresh mmap, and unmaps it on free. Reading clips allocates and frees same-sized buffers
over and over (an ArrayRecord record of a whole video, ~6 MB; a decoded 602x256 frame, 462 KB): each one is a
new mapping whose pages fault in on first touch, and the kernel's mapping lock serialises the threads and
processes doing it. Measured (benchmarks/RESULTS.md, "Input pipeline"): reading one 5.7 MB record took 28 ms with
glibc's defaults and 5.5 ms with the thresholds raised; X3D-S clips from ArrayRecord JPEG, one core: 33.1 clips/s
with the defaults, 52.0 tuned; the 2-core host's grain stream: about 50 clips/s whatever the worker count with the
defaults, 82-90 tuned.

`keep_large_buffers_in_heap()` raises the mmap threshold to glibc's maximum (32 MiB on 64-bit) and the trim
threshold to 128 MiB (freed heap memory up to that much stays with the process for the next clip), once per
process. The clip transform calls it in every process that reads clips (the training process and each grain
worker). Set VMP_MALLOC_TUNING=0 to keep glibc's defaults; elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # glibc's largest (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit)
TRIM_THRESHOLD = 128 * 2**20

_tuned_in: int | None = None  # the pid that was tuned (a forked child is tuned again; it keeps the parent's value)


def keep_large_buffers_in_heap() -> bool:
    """Tune glibc malloc for this process (once); -> whether the tuning is in effect."""
    global _tuned_in
    if _tuned_in == os.getpid():
        return True
    if os.environ.get("VMP_MALLOC_TUNING", "1") == "0":
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl without mallopt)
        return False
    if not (mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        return False
    _tuned_in = os.getpid()
    return True
