"""C1/C2: per-epoch loading, copy, training and metrics time, loss and top-1, at the lab's defaults."""

import pytest

from resnet_lab.benchmarking import BenchSpec, run_training_benchmark

pytestmark = pytest.mark.benchmark(group="C2")


def test_c2_phases(benchmark, device, lab_options, lab_data):
    train_set, test_set = lab_data
    # No evaluation: C1/C2 ask for training loss and top-1 only.
    run_training_benchmark(benchmark, BenchSpec("C2", device=device, evaluate=False), lab_options, train_set, test_set)
    # Every epoch record's phases were checked against its epoch (benchmarking.epoch_problems).
    assert [r["epoch"] for r in benchmark.extra_info["epochs"]] == list(range(1, lab_options.epochs + 1))
