"""Peak memory of one benchmark: the device's (CUDA allocator) and the host process's resident set.

The host peak is the kernel's VmHWM for this process, reset at the start (writing 5 to
/proc/self/clear_refs, Linux >= 4.0) so it covers the benchmark alone; DataLoader workers are
separate processes and are not included. Where the reset is impossible the peak is the
process's since it started, and the record says so.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import torch

from ..devices import device_type

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def reset_host_peak() -> bool:
    """Restart the kernel's peak-RSS count for this process; False where that is not possible."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def host_rss_bytes() -> int | None:
    kib = _status_kib("VmRSS")
    return None if kib is None else kib * 1024


def host_peak_rss_bytes() -> int | None:
    kib = _status_kib("VmHWM")
    return None if kib is None else kib * 1024


def start_peaks(device: torch.device) -> str:
    """Restart the peak counts (device and host); returns since when the host peak counts."""
    kind = device_type(device)
    if kind.memory_figures:  # cuda-only
        kind.torch_module().reset_peak_memory_stats(device)
    return "benchmark" if reset_host_peak() else "process start"


def peaks_record(device: torch.device, since: str) -> dict[str, object]:
    """Peak device bytes (an accelerator with memory figures) and peak/final host RSS bytes since `start_peaks`."""
    kind = device_type(device)
    return {
        "device_peak_memory_bytes": kind.torch_module().max_memory_allocated(device) if kind.memory_figures else None,
        "host_peak_rss_bytes": host_peak_rss_bytes(),
        "host_peak_rss_since": since,
        "host_rss_bytes": host_rss_bytes(),
    }


@contextlib.contextmanager
def memory_peaks(device: torch.device) -> Iterator[dict[str, object]]:
    """Yields a record filled in on exit: peak device bytes (CUDA) and peak/final host RSS bytes."""
    record: dict[str, object] = {}
    since = start_peaks(device)
    yield record
    record.update(peaks_record(device, since))
