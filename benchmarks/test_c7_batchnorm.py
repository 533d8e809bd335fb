"""C7: C6's SGD setup with and without BatchNorm."""

import pytest

from resnet_lab.benchmarking import BenchSpec, epoch_problems, run_training_benchmark


@pytest.mark.parametrize("batch_norm", [True, False], ids=lambda b: f"batch_norm={b}")
def test_c7_batch_norm(benchmark, device, batch_norm, lab_options, lab_data):
    train_set, test_set = lab_data
    run_training_benchmark(benchmark, BenchSpec("C7", device=device, batch_norm=batch_norm), lab_options, train_set, test_set)
    assert [f"epoch {r['epoch']}: {p}" for r in benchmark.extra_info["epochs"] for p in epoch_problems(r)] == []
