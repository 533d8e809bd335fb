"""Parameters of the D benchmarks (not a test module): device with its backend and per-rank batches, world size.

Batches follow D1's rule (32, 128, 512, ... x4 up to the training set's size); on the CPU the preset
caps them (a CPU has no out-of-memory error to stop at), on CUDA D1 goes on until memory runs out.
CUDA parameters are marked `cuda` and skipped with the reason where there is no GPU; a world size the
machine cannot hold is skipped at run time, with the reason, by `DState.skip_reason`.
"""

from __future__ import annotations

import pytest

from resnet_lab.devices import device_marks
from resnet_lab.distributed.launch import default_backend
from resnet_lab.suite.distributed_bench import D_PRESETS, batch_sizes


def parametrize(
    metafunc: pytest.Metafunc, *, single_device: bool = False, batches: bool = True, max_batch: int | None = None
) -> None:
    """device+backend(+batch_per_rank up to `max_batch`) jointly, then world_size: 1 for `single_device`, else the
    preset's."""
    options = metafunc.config.lab_options
    preset = D_PRESETS[options.preset]
    names = ["device", "backend"] + (["batch_per_rank"] if batches else [])
    params = []
    for device in options.devices:
        backend = "none" if single_device else default_backend(device)
        cuda = device.startswith("cuda")
        marks = device_marks(device)
        sizes = (
            [b for b in batch_sizes() if (cuda or b <= preset.cpu_max_batch) and b <= (max_batch or b)]
            if batches
            else [None]
        )
        for batch in sizes:
            values = (device, backend) + ((batch,) if batches else ())
            ident = f"device={device}-backend={backend}" + (f"-batch_per_rank={batch}" if batches else "")
            params.append(pytest.param(*values, id=ident, marks=marks))
    metafunc.parametrize(names, params)
    if "world_size" in metafunc.fixturenames:
        metafunc.parametrize(
            "world_size", (1,) if single_device else preset.world_sizes, ids=lambda n: f"world_size={n}"
        )
