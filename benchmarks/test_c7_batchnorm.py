"""C7: C6's SGD setup (at the C3.2 worker count) with and without BatchNorm."""

from dataclasses import replace

import pytest

from resnet_lab.spec import groups
from resnet_lab.suite.benchmarking import train_or_serve

pytestmark = pytest.mark.benchmark(group=groups.C7)


@pytest.mark.parametrize("batch_norm", [True, False], ids=lambda b: f"batch_norm={b}")
def test_c7_batch_norm(request, benchmark, device, batch_norm, lab_options, lab_data, c32, sweep):
    config = replace(lab_options.base_config, device=device, batch_norm=batch_norm).with_workers(int(c32["workers"]))
    train_or_serve(request, benchmark, config, lab_options, lab_data, sweep, {"c32_workers": c32["workers"]})
