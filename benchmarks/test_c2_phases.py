"""C1/C2: per-epoch loading, copy, training and metrics time, loss and top-1, at the lab's defaults."""

from dataclasses import replace

import pytest

from resnet_lab.spec import groups
from resnet_lab.suite.benchmarking import run_training_benchmark

pytestmark = pytest.mark.benchmark(group=groups.C2)


def test_c2_phases(benchmark, device, lab_options, lab_data):
    train_set, test_set = lab_data
    # No evaluation (eval_batches 0): C1/C2 ask for training loss and top-1 only.
    config = replace(lab_options.base_config, device=device, eval_batches=0)
    run_training_benchmark(benchmark, config, lab_options, train_set, test_set)
    # Every epoch record's phases were checked against its epoch (suite.benchmarking.epoch_problems).
    assert [r["epoch"] for r in benchmark.extra_info["epochs"]] == list(range(1, lab_options.epochs + 1))
