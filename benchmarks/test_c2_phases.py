"""C1/C2: per-epoch loading, copy, training and metrics time, loss and top-1, at the lab's defaults."""

import pytest

from resnet_lab.benchmarking import BenchSpec, run_training_benchmark

pytestmark = pytest.mark.benchmark(group="C2")


def test_c2_phases(benchmark, device, lab_options, lab_data):
    train_set, test_set = lab_data
    # No evaluation: C1/C2 ask for training loss and top-1 only.
    run_training_benchmark(benchmark, BenchSpec("C2", device=device, evaluate=False), lab_options, train_set, test_set)
    for record in benchmark.extra_info["epochs"]:
        assert record["load_s"] + record["copy_s"] + record["train_s"] + record["metrics_s"] <= record["epoch_s"] * 1.001
        assert 0.0 <= record["top1"] <= 1.0
