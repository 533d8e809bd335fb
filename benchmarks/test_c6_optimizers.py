"""C6: SGD, SGD-Nesterov, Adagrad, Adadelta, Adam at lr 0.1, wd 5e-4: time, loss, top-1 per epoch."""

import pytest

from resnet_lab.benchmarking import BenchSpec, epoch_problems, run_training_benchmark
from resnet_lab.optim import OPTIMIZERS


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS), ids=lambda o: f"optimizer={o}")
def test_c6_optimizer(benchmark, device, optimizer, lab_options, lab_data):
    train_set, test_set = lab_data
    run_training_benchmark(benchmark, BenchSpec("C6", device=device, optimizer=optimizer), lab_options, train_set, test_set)
    assert [f"epoch {r['epoch']}: {p}" for r in benchmark.extra_info["epochs"] for p in epoch_problems(r)] == []
