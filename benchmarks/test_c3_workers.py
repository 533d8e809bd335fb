"""C3: data-loading time per epoch for num_workers = 0, 4, 8, 12, 16, ... until it stops improving.

Two views: with training (the lab's question; with capped smoke epochs it
mostly measures worker start-up) and loader-only over one full epoch on the
CPU (cheap, and the basis for C3.2 whenever the training epochs are capped).
"""

from dataclasses import replace

import pytest

from resnet_lab.data import LoaderConfig, make_train_loader
from resnet_lab.spec import groups
from resnet_lab.spec.presets import still_improving
from resnet_lab.suite.benchmarking import loader_epoch, run_training_benchmark


def pytest_generate_tests(metafunc):
    options = metafunc.config.lab_options
    if "workers" in metafunc.fixturenames:
        metafunc.parametrize("workers", options.c3_workers(), ids=lambda w: f"workers={w}")


def skip_unless_improving(times, workers, options):
    earlier = {w: t for w, t in times.items() if w < workers}
    if options.is_extension(workers) and not still_improving(earlier):
        pytest.skip(f"loading time stopped improving before {workers} workers: {earlier}")


@pytest.mark.benchmark(group=groups.C3)
def test_c3_workers(request, benchmark, device, workers, lab_options, lab_data, sweep):
    skip_unless_improving(sweep.training, workers, lab_options)
    train_set, test_set = lab_data
    # The point at the C3.2 count is C4's, C5's, C6's (sgd) and C7's (BN on) configuration too: those
    # questions read it instead of training it again, and C6/C7 have it evaluated when they do.
    config = replace(lab_options.base_config, device=device).with_workers(workers)
    run = run_training_benchmark(benchmark, config, lab_options, train_set, test_set, evaluate_now=False)
    sweep.record_trained(config, request.node.name, run, benchmark.extra_info)
    if sweep.training_device in (None, device):  # one sweep per run: the first device's
        sweep.training_device = device
        sweep.training[workers] = float(run.summary()["load_s"])
        sweep.training_full_epochs = lab_options.max_batches is None


@pytest.mark.benchmark(group=groups.C3_LOADER)
def test_c3_loader_only(request, benchmark, workers, lab_options, lab_data, sweep):
    if lab_options.max_batches is None and any(
        getattr(item, "originalname", "") == "test_c3_workers" for item in request.session.items
    ):
        pytest.skip(
            "epochs are not capped, so C3 with training measures whole loader epochs and gives C3.2 itself; "
            "the loader-only view would repeat it"
        )
    skip_unless_improving(sweep.loader, workers, lab_options)
    train_set, _ = lab_data
    loader = make_train_loader(train_set, LoaderConfig(num_workers=workers))
    result = benchmark.pedantic(loader_epoch, args=(loader,), rounds=1, iterations=1)
    assert result["images"] == len(train_set)
    sweep.loader[workers] = float(result["load_s"])
    benchmark.extra_info.update(result, workers=workers, device="cpu", data=train_set.source, preset=lab_options.preset)
