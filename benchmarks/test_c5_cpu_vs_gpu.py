"""C5: average epoch time, CPU vs GPU, at the C3.2 worker count (compare images/s when epochs are capped)."""

from dataclasses import replace

import pytest

from resnet_lab.spec import groups
from resnet_lab.suite.benchmarking import train_or_serve

pytestmark = pytest.mark.benchmark(group=groups.C5)

# Devices come from --lab-device (default cpu,cuda; absent CUDA is skipped with its reason). On a GPU
# machine the full-preset CPU side takes hours, so the GPU check runs cuda only and C5 pairs it with a CPU run.


def test_c5_device(request, benchmark, device, lab_options, lab_data, c32, sweep):
    config = replace(lab_options.base_config, device=device, eval_batches=0).with_workers(int(c32["workers"]))
    train_or_serve(
        request,
        benchmark,
        config,
        lab_options,
        lab_data,
        sweep,
        {"c32_workers": c32["workers"], "c32_rule": c32["rule"]},
    )
