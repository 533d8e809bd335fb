"""Loader throughput at full data size: the lab's PIL DataLoader (0 and 2 workers) vs the device-resident loader."""

import statistics

import pytest

from resnet_lab.data import LoaderConfig, make_train_loader
from resnet_lab.data.device_loader import DeviceLoader
from resnet_lab.devices import device_marks
from resnet_lab.spec import groups
from resnet_lab.suite.benchmarking import loader_epoch

pytestmark = pytest.mark.benchmark(group=groups.LOADER)

PIPELINES = [("dataloader", 0), ("dataloader", 2), ("device-resident", 0)]
PARAMETRIZES_DEVICE = True  # devices come with the pipeline below, not from conftest
ROUNDS = {"dataloader": 1, "device-resident": 5}  # a PIL epoch takes seconds; a device-resident one, milliseconds


def pytest_generate_tests(metafunc):
    if "pipeline" in metafunc.fixturenames:
        params = []
        for pipeline, workers in PIPELINES:
            # The PIL DataLoader runs on host CPUs whatever the training device, so it is measured once, on the CPU.
            devices = ["cpu"] if pipeline == "dataloader" else metafunc.config.lab_options.devices
            for device in devices:
                marks = device_marks(device)
                params.append(
                    pytest.param(
                        pipeline,
                        workers,
                        device,
                        id=f"pipeline={pipeline}-workers={workers}-device={device}",
                        marks=marks,
                    )
                )
        metafunc.parametrize(("pipeline", "workers", "device"), params)


def test_loader_throughput(benchmark, pipeline, workers, device, lab_data, lab_options):
    train_set, _ = lab_data
    if pipeline == "dataloader":
        loader = make_train_loader(train_set, LoaderConfig(num_workers=workers))
    else:
        loader = DeviceLoader(train_set.images, train_set.labels, 128, device=device)
    rounds = []
    result = benchmark.pedantic(
        lambda: rounds.append(loader_epoch(loader, device)) or rounds[-1], rounds=ROUNDS[pipeline], iterations=1
    )
    assert result["images"] == len(train_set)
    seconds = (
        benchmark.stats.stats.median if benchmark.stats else result["load_s"]
    )  # stats is None under --benchmark-disable
    images_per_s = len(train_set) / seconds
    info = {
        "images_per_s": images_per_s,
        "images": len(train_set),
        "pipeline": pipeline,
        "workers": workers,
        "device": device,
        "data": train_set.source,
        "preset": lab_options.preset,
    }
    if rounds and all(
        "load_cpu_s" in r for r in rounds
    ):  # this process's CPU seconds per round (CPU clock only), beside round_s
        info["round_cpu_s"] = statistics.median(r["load_cpu_s"] for r in rounds)
    benchmark.extra_info.update(info)
