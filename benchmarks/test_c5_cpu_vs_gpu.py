"""C5: average epoch time, CPU vs GPU, at the C3.2 worker count (compare images/s when epochs are capped)."""

from resnet_lab.benchmarking import BenchSpec, epoch_problems, run_training_benchmark

# Devices come from --lab-device (default cpu,cuda; absent CUDA is skipped with its reason). On a GPU
# machine the full-preset CPU side takes hours, so gpu-check runs cuda only and C5 pairs it with a CPU run.


def test_c5_device(benchmark, device, lab_options, lab_data, c32):
    train_set, test_set = lab_data
    spec = BenchSpec("C5", device=device, workers=int(c32["workers"]), evaluate=False)
    run_training_benchmark(benchmark, spec, lab_options, train_set, test_set, extra={"c32_workers": c32["workers"], "c32_rule": c32["rule"]})
    assert [f"epoch {r['epoch']}: {p}" for r in benchmark.extra_info["epochs"] for p in epoch_problems(r)] == []
