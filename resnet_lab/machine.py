"""What a figure was measured on: library versions and hardware, as a flat record.

torch is imported inside the functions that read it: `cpu_count` serves the torch-free
suite presets and the image-folder decoder too.
"""

from __future__ import annotations

import os
import platform


def cpu_count() -> int:
    """CPUs this process may use (the affinity mask, not the host's total)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))  # honours taskset/cgroup CPU masks
    return os.cpu_count() or 1


def numerics_state() -> dict[str, object]:
    """The fp32 math settings in force now (they apply on CUDA; recorded everywhere so runs compare)."""
    import torch

    return {
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cuda_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }


def environment_info() -> dict[str, object]:
    import torch
    import torchvision

    cuda = torch.cuda.is_available()
    return {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "cuda_available": cuda,
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "gpu_count": torch.cuda.device_count() if cuda else 0,
        "cpu_count": cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        **numerics_state(),
    }
