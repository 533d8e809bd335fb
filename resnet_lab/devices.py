"""One table of the device types the lab runs on: what differs between a CPU and an accelerator, declared once.

Availability, synchronization, peak-memory figures, profiler activity, pinned host memory, the collective backend
and the reason a test or benchmark is skipped, per `torch.device` type. A new accelerator is one `DeviceType`
entry (its torch module must offer `is_available`, `device_count`, `synchronize` and, for memory figures,
`reset_peak_memory_stats`/`max_memory_allocated`, as `torch.cuda`, `torch.xpu` and, for what it has, `torch.mps`
do). Torch is imported inside the functions: importing the table costs nothing (the results layer reads its names).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DeviceType:
    name: str  # torch.device(...).type
    module: str | None  # torch.<module> that drives it; None: the host, always there and never asynchronous
    backend: str  # torch.distributed's collective backend for its ranks
    profiler_activity: str  # torch.profiler.ProfilerActivity member beside CPU; "" for the host
    pin_memory: bool  # DataLoader pins host memory for it by default (async copies)
    memory_figures: bool  # its module reports peak allocated memory
    machine: str  # where to run what needs it, for the skip reason

    def torch_module(self) -> Any:
        import torch

        return getattr(torch, self.module) if self.module else None

    def available(self) -> bool:
        module = self.torch_module()
        return True if module is None else bool(module.is_available())

    def count(self) -> int:
        module = self.torch_module()
        return 1 if module is None else int(module.device_count())

    @property
    def skip_reason(self) -> str:
        """Why a test or benchmark on this device type is skipped here, and how to run it."""
        return (
            f"{self.name.upper()} is not available here (torch.{self.module}.is_available() is False); "
            f"run on {self.machine} or pass --lab-device cpu"
        )


DEVICE_TYPES: dict[str, DeviceType] = {
    device.name: device
    for device in (
        DeviceType(
            "cpu", None, backend="gloo", profiler_activity="", pin_memory=False, memory_figures=False, machine=""
        ),
        DeviceType(
            "cuda",
            "cuda",
            backend="nccl",
            profiler_activity="CUDA",
            pin_memory=True,
            memory_figures=True,
            machine="a GPU machine",
        ),
    )
}
ACCELERATORS = tuple(name for name, device in DEVICE_TYPES.items() if device.module)


def device_type(device: Any) -> DeviceType:
    """The table's entry for a `torch.device`, or a name such as "cuda:1"."""
    name = device.type if hasattr(device, "type") else str(device).split(":")[0]
    try:
        return DEVICE_TYPES[name]
    except KeyError:
        raise KeyError(f"unsupported device type {name!r}: use one of {', '.join(DEVICE_TYPES)}") from None


def synchronizer(device: Any) -> Any:
    """A function that waits for `device`'s queued work, or None for the host."""
    module = device_type(device).torch_module()
    return None if module is None else (lambda: module.synchronize(device))


def here() -> str:
    """The accelerator this machine has (torch.accelerator where the installed torch has it), else "cpu"."""
    import torch

    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None:
        current = accelerator.current_accelerator() if accelerator.is_available() else None
        return current.type if current is not None and current.type in DEVICE_TYPES else "cpu"
    return next((name for name in ACCELERATORS if DEVICE_TYPES[name].available()), "cpu")


def device_marks(device: str) -> list[Any]:
    """The pytest marks of a test or benchmark parametrized on `device`: its type's marker and a skip where it is
    not available, with the reason. Defined once for the unit tests, the benchmarks and the D benchmarks."""
    import pytest

    kind = device_type(device)
    if kind.module is None:
        return []
    return [getattr(pytest.mark, kind.name), pytest.mark.skipif(not kind.available(), reason=kind.skip_reason)]


def requires(device: str) -> Any:
    """A decorator for a test that needs `device`: `device_marks`, applied."""

    def apply(test: Any) -> Any:
        for mark in device_marks(device):
            test = mark(test)
        return test

    return apply
