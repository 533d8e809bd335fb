"""C4: one worker vs the C3.2 worker count, loading and compute time side by side."""

import pytest

from resnet_lab.benchmarking import BenchSpec, epoch_problems, run_training_benchmark
from resnet_lab.suite import C4_BASELINE_WORKERS


@pytest.mark.parametrize("choice", ["one", "c3.2"], ids=lambda c: f"workers={c}")
def test_c4_workers(benchmark, device, choice, lab_options, lab_data, c32):
    workers = C4_BASELINE_WORKERS if choice == "one" else int(c32["workers"])
    train_set, test_set = lab_data
    spec = BenchSpec("C4", device=device, workers=workers, evaluate=False)
    run_training_benchmark(
        benchmark, spec, lab_options, train_set, test_set, extra={"c32_workers": c32["workers"], "c32_rule": c32["rule"], "choice": choice}
    )
    assert [f"epoch {r['epoch']}: {p}" for r in benchmark.extra_info["epochs"] for p in epoch_problems(r)] == []
