"""Host-memory allocator tuning for CPU training (C8 `best` on a CPU).

PyTorch's CPU tensors come straight from malloc. glibc serves large blocks
with mmap and trims the heap top back to the OS when they are freed, so every
training step maps, zero-fills and unmaps its activations afresh: thousands to tens of
thousands of page faults per step (tests/test_hostalloc.py counts them). With
the settings below freed memory is kept and reused, and the faults stop after
the first epoch.

jemalloc or tcmalloc through LD_PRELOAD would do the same, but they are not
pip-installable and must be chosen before the process starts; mallopt is
glibc's own switch and needs nothing installed.

The setting is process-wide and cannot be undone (glibc then stops adapting
its thresholds), so a run that uses it (`RunConfig.changes_process`) runs in a
process of its own in the suite (`perf/isolated.py`).
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1  # <malloc.h>
M_MMAP_THRESHOLD = -3
# glibc's largest accepted mmap threshold on 64-bit (HEAP_MAX_SIZE / 2), above the largest
# activation block of a batch-128 ResNet-18 step, so that none of them is served by mmap.
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 2**31 - 1  # never give the heap top back


def retain_freed_memory() -> dict[str, object]:
    """Make malloc keep freed memory for reuse; says whether it could (glibc only)."""
    library = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(library).mallopt
    except (OSError, AttributeError, TypeError):
        return {"retain_heap": False, "why": f"no glibc mallopt in this process's C library ({library})"}
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    applied = (
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
    )
    record: dict[str, object] = {"retain_heap": applied, "mmap_threshold_bytes": MMAP_THRESHOLD_BYTES}
    if not applied:
        record["why"] = "mallopt refused the thresholds"
    return record
