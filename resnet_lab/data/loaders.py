"""The lab's DataLoaders: settings, the shuffled training loader, the test loader, worker seeding."""

from __future__ import annotations

import random
from collections.abc import Sized
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..devices import DEVICE_TYPES
from ..errors import DataError
from ..procs import die_with_parent
from .dataset import one_line, require_int


@dataclass(frozen=True)
class LoaderConfig:
    """DataLoader settings; defaults are the lab's (train batch 128 shuffled, test batch 100, 2 workers)."""

    batch_size: int = 128
    test_batch_size: int = 100
    num_workers: int = 2
    pin_memory: bool | None = None  # None: True exactly when the device is CUDA
    persistent_workers: bool = False
    prefetch_factor: int | None = None  # DataLoader's default when None
    seed: int = 0  # seeds the shuffling generator and, through it, the workers
    drop_last: bool = False
    # Seconds to wait for one batch from the workers before raising (a hung worker would otherwise
    # hang the run forever); 0 waits forever. Ignored with num_workers=0. A killed worker is
    # detected without it.
    timeout: float = 120.0

    def __post_init__(self) -> None:
        require_int("batch_size", self.batch_size, 1)
        require_int("test_batch_size", self.test_batch_size, 1)
        require_int("num_workers", self.num_workers, 0)
        require_int("seed", self.seed, 0)
        if self.prefetch_factor is not None:
            require_int("prefetch_factor", self.prefetch_factor, 1)
            if self.num_workers == 0:
                raise DataError(
                    "prefetch_factor needs worker processes: set num_workers >= 1 or leave prefetch_factor unset"
                )
        if self.persistent_workers and self.num_workers == 0:
            raise DataError(
                "persistent_workers needs worker processes: set num_workers >= 1 or persistent_workers=False"
            )
        if (
            isinstance(self.timeout, bool)
            or not isinstance(self.timeout, (int, float))
            or not 0 <= self.timeout < float("inf")
        ):
            raise DataError(f"timeout must be a number of seconds >= 0 (0 waits forever), got {self.timeout!r}")


def seed_worker(worker_id: int) -> None:
    """worker_init_fn: seed numpy and `random` from the worker's torch seed (PyTorch's reproducibility recipe).

    The DataLoader derives each worker's torch seed from its generator, so these follow `LoaderConfig.seed`.
    torch >= 1.9 already seeds both in its worker loop; this states the contract here instead of relying on it.
    """
    die_with_parent()  # torch's own watchdog notices a dead parent only every 5 s
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


def make_train_loader(
    dataset: Dataset, config: LoaderConfig, device: torch.device | str = "cpu", *, sampler: Sampler | None = None
) -> DataLoader:
    """Shuffled training loader; order and worker seeds follow `config.seed`.

    `sampler` replaces the shuffle (a `DistributedSampler` gives each data-parallel rank its shard).
    """
    return _make_loader(
        dataset,
        config,
        config.batch_size,
        "batch_size",
        shuffle=sampler is None,
        drop_last=config.drop_last,
        device=device,
        sampler=sampler,
    )


def make_test_loader(
    dataset: Dataset, config: LoaderConfig, device: torch.device | str = "cpu", *, sampler: Sampler | None = None
) -> DataLoader:
    """Evaluation loader: fixed order, `test_batch_size`, every item kept (`sampler`: this rank's shard)."""
    return _make_loader(
        dataset,
        config,
        config.test_batch_size,
        "test_batch_size",
        shuffle=False,
        drop_last=False,
        device=device,
        sampler=sampler,
    )


def _make_loader(
    dataset: Dataset,
    config: LoaderConfig,
    batch_size: int,
    batch_name: str,
    shuffle: bool,
    drop_last: bool,
    device: torch.device | str,
    sampler: Sampler | None = None,
) -> DataLoader:
    if not isinstance(dataset, Sized) or len(dataset) == 0:
        raise DataError("the dataset is empty; check the data source")
    if batch_size > len(dataset):
        raise DataError(
            f"{batch_name} {batch_size} is larger than the dataset ({len(dataset)} items); use a smaller {batch_name}"
        )
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise DataError(f"unknown device {device!r} ({one_line(exc)}); use cpu, cuda or cuda:N") from exc
    kind = DEVICE_TYPES.get(device.type)  # the device table's default (resnet_lab/devices.py)
    pin_memory = bool(kind and kind.pin_memory) if config.pin_memory is None else config.pin_memory
    extra: dict[str, Any] = {}
    if config.prefetch_factor is not None:
        extra["prefetch_factor"] = config.prefetch_factor
    if config.num_workers > 0:
        extra["timeout"] = float(config.timeout)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        sampler=sampler,
        num_workers=config.num_workers,
        pin_memory=pin_memory,
        drop_last=drop_last,
        persistent_workers=config.persistent_workers,
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(config.seed),
        **extra,
    )
