"""A run that changes process-wide state for good trains in a spawned process of its own (perf/isolated.py):
the benchmark records the same figures as an in-process run, and this process is never tuned."""

from __future__ import annotations

import os

import pytest

from resnet_lab.data import DataConfig, LoaderConfig, load_datasets
from resnet_lab.engine import run as run_module
from resnet_lab.engine.run import RunConfig
from resnet_lab.errors import DataError
from resnet_lab.perf.isolated import IsolatedRun
from resnet_lab.suite.benchmarking import run_training_benchmark
from resnet_lab.suite.options import LabOptions

TINY = DataConfig(train_size=64, test_size=16)
CONFIG = RunConfig(epochs=2, max_batches=1, eval_batches=0, loader=LoaderConfig(batch_size=8, num_workers=0))


class FakeBenchmark:
    """pytest-benchmark's fixture as run_training_benchmark uses it: rounds of `fn`, and extra_info."""

    def __init__(self) -> None:
        self.extra_info: dict[str, object] = {}
        self.rounds: list[object] = []

    def pedantic(self, fn, rounds: int, iterations: int, warmup_rounds: int) -> None:
        self.rounds += [fn() for _ in range(rounds)]


def benchmark_of(config: RunConfig, monkeypatch: pytest.MonkeyPatch) -> tuple[FakeBenchmark, object]:
    monkeypatch.setattr(LabOptions, "data_config", property(lambda self: TINY))  # the child builds this small data set
    train_set, _ = load_datasets(TINY)
    bench = FakeBenchmark()
    return bench, run_training_benchmark(bench, config, LabOptions(), train_set, None)


def test_a_process_changing_run_trains_in_a_child_and_records_what_an_in_process_run_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    in_process, _ = benchmark_of(CONFIG, monkeypatch)

    def never_here() -> dict:
        raise AssertionError("malloc was tuned in the test process")

    monkeypatch.setattr(run_module, "retain_freed_memory", never_here)  # the spawned child imports its own copy
    isolated, run = benchmark_of(CONFIG.__class__(**{**CONFIG.__dict__, "retain_heap": True}), monkeypatch)
    assert isinstance(run, IsolatedRun) and run.pid != os.getpid()
    assert not run._process.is_alive()  # closed with the benchmark
    assert set(isolated.extra_info) == set(in_process.extra_info)
    assert isolated.rounds == isolated.extra_info["epochs"] == run.records
    assert [r["warmup"] for r in run.records] == [True, False]  # numbered by the child's LabRun, as in process
    assert isolated.extra_info["host_peak_rss_since"] == "benchmark"  # the child's own peak
    assert run.host_alloc.get("retain_heap") in (True, False)  # applied (glibc) or said why not, in the child


def test_an_error_in_the_child_is_raised_here_as_itself() -> None:
    with pytest.raises(DataError, match="does not exist"):
        IsolatedRun(CONFIG, DataConfig(source="/nonexistent/cifar"))
