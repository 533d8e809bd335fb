"""C5: average epoch time, CPU vs GPU, at the C3.2 worker count (compare images/s when epochs are capped)."""

import pytest

from resnet_lab.benchmarking import BenchSpec, train_or_serve

pytestmark = pytest.mark.benchmark(group="C5")

# Devices come from --lab-device (default cpu,cuda; absent CUDA is skipped with its reason). On a GPU
# machine the full-preset CPU side takes hours, so the GPU check runs cuda only and C5 pairs it with a CPU run.


def test_c5_device(request, benchmark, device, lab_options, lab_data, c32, sweep):
    spec = BenchSpec("C5", device=device, workers=int(c32["workers"]), evaluate=False)
    train_or_serve(request, benchmark, spec, lab_options, lab_data, sweep, {"c32_workers": c32["workers"], "c32_rule": c32["rule"]})
