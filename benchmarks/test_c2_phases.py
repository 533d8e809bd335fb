"""C1/C2: per-epoch loading, copy, training and metrics time, loss and top-1, at the lab's defaults."""

import math

from resnet_lab.benchmarking import BenchSpec, epoch_problems, run_training_benchmark


def test_c2_phases(benchmark, device, lab_options, lab_data):
    train_set, test_set = lab_data
    run_training_benchmark(benchmark, BenchSpec("C2", device=device), lab_options, train_set, test_set)
    assert [f"epoch {r['epoch']}: {p}" for r in benchmark.extra_info["epochs"] for p in epoch_problems(r)] == []
    info = benchmark.extra_info
    assert len(info["epochs"]) == lab_options.epochs
    assert math.isfinite(info["test_loss"]) and 0.0 <= info["test_top1"] <= 1.0 and info["test_images"] > 0
