"""C6: SGD, SGD-Nesterov, Adagrad, Adadelta, Adam at lr 0.1, wd 5e-4: time, loss, top-1 per epoch, at the C3.2 worker
count."""

from dataclasses import replace

import pytest

from resnet_lab.optim import OPTIMIZERS
from resnet_lab.spec import groups
from resnet_lab.suite.benchmarking import train_or_serve

pytestmark = pytest.mark.benchmark(group=groups.C6)


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS), ids=lambda o: f"optimizer={o}")
def test_c6_optimizer(request, benchmark, device, optimizer, lab_options, lab_data, c32, sweep):
    config = replace(lab_options.base_config, device=device, optimizer=optimizer).with_workers(int(c32["workers"]))
    train_or_serve(request, benchmark, config, lab_options, lab_data, sweep, {"c32_workers": c32["workers"]})
