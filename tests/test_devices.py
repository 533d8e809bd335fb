"""The device table (resnet_lab/devices.py): what the CPU and CUDA entries decide, read back where it is used."""

from __future__ import annotations

import pytest
import torch
from torch.profiler import ProfilerActivity

from resnet_lab import devices
from resnet_lab.data import DataConfig, LoaderConfig, load_datasets, make_train_loader
from resnet_lab.distributed.launch import CUDA_SKIP, default_backend
from resnet_lab.engine.clock import device_sync_fn
from resnet_lab.perf.memory import peaks_record
from resnet_lab.perf.profiling import activities as profiler_activities


def test_cuda_behaves_as_before_the_table():
    assert default_backend("cpu") == "gloo" and default_backend("cuda:1") == "nccl"
    assert CUDA_SKIP == (
        "CUDA is not available here (torch.cuda.is_available() is False); run on a GPU machine or pass --lab-device cpu"
    )
    assert profiler_activities(torch.device("cpu")) == [ProfilerActivity.CPU]
    assert profiler_activities(torch.device("cuda")) == [ProfilerActivity.CPU, ProfilerActivity.CUDA]
    assert device_sync_fn("cpu") is None and callable(device_sync_fn("cuda"))
    assert peaks_record(torch.device("cpu"), "benchmark")["device_peak_memory_bytes"] is None


def test_pinned_memory_follows_the_device_type():
    train, _ = load_datasets(DataConfig(train_size=64, test_size=8))
    assert not make_train_loader(train, LoaderConfig(batch_size=8), "cpu").pin_memory
    assert make_train_loader(train, LoaderConfig(batch_size=8), "cuda").pin_memory


def test_the_skip_marks_match_what_this_machine_has():
    assert devices.device_marks("cpu") == []
    names = [mark.mark.name for mark in devices.device_marks("cuda:0")]
    skip = devices.device_marks("cuda")[1].mark
    assert names == ["cuda", "skipif"] and skip.args == (not torch.cuda.is_available(),)
    assert skip.kwargs["reason"] == CUDA_SKIP
    assert devices.here() == ("cuda" if torch.cuda.is_available() else "cpu")


def test_an_unknown_device_type_is_named():
    with pytest.raises(KeyError, match="unsupported device type 'tpu'"):
        devices.device_type("tpu:0")
