"""C7: C6's SGD setup (at the C3.2 worker count) with and without BatchNorm."""

import pytest

from resnet_lab.benchmarking import BenchSpec, train_or_serve

pytestmark = pytest.mark.benchmark(group="C7")


@pytest.mark.parametrize("batch_norm", [True, False], ids=lambda b: f"batch_norm={b}")
def test_c7_batch_norm(request, benchmark, device, batch_norm, lab_options, lab_data, c32, sweep):
    spec = BenchSpec("C7", device=device, batch_norm=batch_norm, workers=int(c32["workers"]))
    train_or_serve(request, benchmark, spec, lab_options, lab_data, sweep, {"c32_workers": c32["workers"]})
