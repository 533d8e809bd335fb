"""Fixtures shared by the test modules: a private data cache and a tiny image folder (the CLI and failure-mode
tests), fake wall and CPU time charged by the loop's own calls (the loop's pinned tests, tests/pinnedtime.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from datafixtures import write_image_folder

if TYPE_CHECKING:
    from pinnedtime import FakeTime


@pytest.fixture()
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A per-test data cache; the env var is inherited by subprocesses, so no test touches the user's home."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("RESNET_LAB_CACHE", str(cache))
    return cache


@pytest.fixture()
def tiny_folder(tmp_path: Path) -> Path:
    """20 train and 10 test images, two and one per class: loads in milliseconds."""
    write_image_folder(tmp_path / "tiny", train_per_class=2, test_per_class=1)
    return tmp_path / "tiny"


@pytest.fixture
def time(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    """Fake time charged by the loop's own copy, train and metrics calls."""
    from pinnedtime import COPY, METRICS, TRAIN, FakeTime, charged

    from resnet_lab.engine import loop as train_module
    from resnet_lab.engine.metrics import EpochMetrics

    fake = FakeTime()
    monkeypatch.setattr(train_module, "to_device", charged(fake, COPY, train_module.to_device))
    monkeypatch.setattr(train_module, "train_step", charged(fake, TRAIN, train_module.train_step))
    monkeypatch.setattr(EpochMetrics, "update", charged(fake, METRICS, EpochMetrics.update))
    return fake


@pytest.fixture
def cpu(time: FakeTime, monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    """A fake CPU clock charged by the computing calls on top of `time`'s wall charges."""
    from pinnedtime import COPY_CPU, METRICS_CPU, TRAIN_CPU, FakeTime, charged

    from resnet_lab.engine import loop as train_module
    from resnet_lab.engine.metrics import EpochMetrics

    fake = FakeTime()
    monkeypatch.setattr(train_module, "to_device", charged(fake, COPY_CPU, train_module.to_device))
    monkeypatch.setattr(train_module, "train_step", charged(fake, TRAIN_CPU, train_module.train_step))
    monkeypatch.setattr(EpochMetrics, "update", charged(fake, METRICS_CPU, EpochMetrics.update))
    return fake
