"""C3: data-loading time per epoch for num_workers = 0, 4, 8, 12, 16, ... until it stops improving.

Two views: with training (the lab's question; with capped smoke epochs it
mostly measures worker start-up) and loader-only over one full epoch on the
CPU (cheap, and the basis for C3.2 whenever the training epochs are capped).
"""

import pytest

from resnet_lab.benchmarking import BenchSpec, epoch_problems, loader_epoch, run_training_benchmark, use_synced_timer
from resnet_lab.data import LoaderConfig, make_train_loader
from resnet_lab.suite import still_improving


def pytest_generate_tests(metafunc):
    options = metafunc.config.lab_options
    if "workers" in metafunc.fixturenames:
        metafunc.parametrize("workers", options.c3_workers(), ids=lambda w: f"workers={w}")


def skip_unless_improving(times, workers, options):
    earlier = {w: t for w, t in times.items() if w < workers}
    if options.is_extension(workers) and not still_improving(earlier):
        pytest.skip(f"loading time stopped improving before {workers} workers: {earlier}")


def test_c3_workers(benchmark, device, workers, lab_options, lab_data, sweep):
    skip_unless_improving(sweep.training, workers, lab_options)
    train_set, test_set = lab_data
    spec = BenchSpec("C3", device=device, workers=workers, evaluate=False)
    run = run_training_benchmark(benchmark, spec, lab_options, train_set, test_set)
    assert [f"epoch {r['epoch']}: {p}" for r in benchmark.extra_info["epochs"] for p in epoch_problems(r)] == []
    if sweep.training_device in (None, device):  # one sweep per run: the first device's
        sweep.training_device = device
        sweep.training[workers] = float(run.summary()["load_s"])
        sweep.training_full_epochs = lab_options.max_batches is None


def test_c3_loader_only(benchmark, workers, lab_options, lab_data, sweep):
    skip_unless_improving(sweep.loader, workers, lab_options)
    train_set, _ = lab_data
    loader = make_train_loader(train_set, LoaderConfig(num_workers=workers))
    benchmark.group = "C3-loader"
    use_synced_timer(benchmark, "cpu")
    result = benchmark.pedantic(loader_epoch, args=(loader,), rounds=1, iterations=1)
    assert result["images"] == len(train_set) and result["load_s"] > 0
    sweep.loader[workers] = float(result["load_s"])
    benchmark.extra_info.update(result, workers=workers, device="cpu", data=train_set.source, preset=lab_options.preset)
