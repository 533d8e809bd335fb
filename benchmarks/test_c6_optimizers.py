"""C6: SGD, SGD-Nesterov, Adagrad, Adadelta, Adam at lr 0.1, wd 5e-4: time, loss, top-1 per epoch, at the C3.2 worker count."""

import pytest

from resnet_lab.benchmarking import BenchSpec, train_or_serve
from resnet_lab.optim import OPTIMIZERS

pytestmark = pytest.mark.benchmark(group="C6")


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS), ids=lambda o: f"optimizer={o}")
def test_c6_optimizer(request, benchmark, device, optimizer, lab_options, lab_data, c32, sweep):
    spec = BenchSpec("C6", device=device, optimizer=optimizer, workers=int(c32["workers"]))
    train_or_serve(request, benchmark, spec, lab_options, lab_data, sweep, {"c32_workers": c32["workers"]})
