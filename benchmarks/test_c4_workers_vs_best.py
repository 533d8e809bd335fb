"""C4: one worker vs the C3.2 worker count, loading and compute time side by side."""

from dataclasses import replace

import pytest

from resnet_lab.spec import groups
from resnet_lab.spec.presets import C4_BASELINE_WORKERS
from resnet_lab.suite.benchmarking import train_or_serve

pytestmark = pytest.mark.benchmark(group=groups.C4)


@pytest.mark.parametrize("choice", ["one", "c3.2"], ids=lambda c: f"workers={c}")
def test_c4_workers(request, benchmark, device, choice, lab_options, lab_data, c32, sweep):
    workers = C4_BASELINE_WORKERS if choice == "one" else int(c32["workers"])
    config = replace(lab_options.base_config, device=device, eval_batches=0).with_workers(workers)
    extra = {"c32_workers": c32["workers"], "c32_rule": c32["rule"], "choice": choice}
    train_or_serve(request, benchmark, config, lab_options, lab_data, sweep, extra)
