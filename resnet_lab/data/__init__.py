"""CIFAR-10 data for the lab: sources, the decoded-source cache, transforms, loaders, the device loader.

- `sources.py`: what `--data` accepts (the `SOURCES` registry), `DataConfig`, `load_datasets`
- `synthetic.py`, `imagefolder.py`: the sources that are not torchvision's; `cache.py`: their cache
- `dataset.py`: the in-memory form every source ends up in (`LabDataset`)
- `transforms.py`: the lab's constants and PIL transforms; `loaders.py`: `LoaderConfig`, the DataLoaders
- `device_loader.py`: the device-resident loader (C8, `loader` benchmarks)
"""

from ..errors import DataError
from .dataset import LabDataset
from .loaders import LoaderConfig, make_test_loader, make_train_loader, seed_worker
from .sources import (
    ACCEPTED_LAYOUTS,
    SOURCES,
    SOURCES_HELP,
    SYNTHETIC,
    DataConfig,
    check_source,
    describe_source,
    load_datasets,
)
from .transforms import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD, NUM_CLASSES, test_transform, train_transform

__all__ = [
    "ACCEPTED_LAYOUTS",
    "CIFAR10_CLASSES",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "NUM_CLASSES",
    "SOURCES",
    "SOURCES_HELP",
    "SYNTHETIC",
    "DataConfig",
    "DataError",
    "LabDataset",
    "LoaderConfig",
    "check_source",
    "describe_source",
    "load_datasets",
    "make_test_loader",
    "make_train_loader",
    "seed_worker",
    "test_transform",
    "train_transform",
]
