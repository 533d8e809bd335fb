"""Fixtures shared by the CLI and failure-mode tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from datafixtures import write_image_folder


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
