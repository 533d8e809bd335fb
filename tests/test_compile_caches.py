"""C8's compile cost is a cold build: each compiled run starts from a fresh Dynamo and no compiler caches."""

import shutil

import pytest
import torch
from torch._dynamo.utils import counters  # Inductor's cache hit/miss counts; no public accessor

import resnet_lab.engine.run as run_module
from resnet_lab.engine.run import LabRun, RunConfig, compiler_caches


def _double_plus_one(x: torch.Tensor) -> torch.Tensor:
    return torch.relu(x * 2 + 1).sum()


def _fx_cache_hits_of_a_fresh_compile(caches_on: bool) -> int:
    torch.compiler.reset()  # drop Dynamo's in-memory code cache, so the call below compiles again
    counters.clear()
    with compiler_caches(caches_on):
        torch.compile(_double_plus_one)(torch.randn(8))
    return counters["inductor"]["fxgraph_cache_hit"]


@pytest.mark.skipif(
    shutil.which("g++") is None, reason="Inductor's CPU backend needs a C++ compiler (g++) to build kernels"
)
def test_caches_off_rebuilds_what_caches_on_would_load(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))  # an empty on-disk cache, not this machine's
    try:
        assert _fx_cache_hits_of_a_fresh_compile(caches_on=True) == 0  # first build: nothing to load
        assert _fx_cache_hits_of_a_fresh_compile(caches_on=True) == 1  # the same graph again is loaded...
        assert _fx_cache_hits_of_a_fresh_compile(caches_on=False) == 0  # ...unless the caches are off
    finally:
        torch.compiler.reset()
    assert not torch.compiler.config.force_disable_caches  # restored on leaving


def _spy_compiler(monkeypatch) -> list[str]:
    """Record torch.compiler.reset/torch.compile and whether caches were off during an epoch; compile nothing."""
    log: list[str] = []
    monkeypatch.setattr(torch.compiler, "reset", lambda: log.append("reset"))

    def fake_compile(model, **kwargs):
        log.append(f"compile {kwargs['mode']}")
        return model

    def fake_epoch(*args, **kwargs):
        log.append(f"epoch caches_off={torch.compiler.config.force_disable_caches}")
        return {"epoch": kwargs["epoch"]}

    monkeypatch.setattr(torch, "compile", fake_compile)
    monkeypatch.setattr(run_module, "train_one_epoch", fake_epoch)
    return log


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (RunConfig(compile_mode="default", cold_compile=True), ["reset", "compile default", "epoch caches_off=True"]),
        (RunConfig(compile_mode="default"), ["reset", "compile default", "epoch caches_off=False"]),
        (RunConfig(), ["epoch caches_off=False"]),  # eager: Dynamo's state is left alone
    ],
    ids=["cold", "warm", "eager"],
)
def test_a_compiled_run_resets_dynamo_before_compiling(monkeypatch, config, expected) -> None:
    log = _spy_compiler(monkeypatch)
    LabRun(config, train_loader=[]).run_epoch()
    assert log == expected
    assert not torch.compiler.config.force_disable_caches
