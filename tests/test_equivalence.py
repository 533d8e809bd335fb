"""C8's equivalence check (perf/equivalence.py) passes every legitimate variant and has teeth: each bug
planted in one variant's path only (perf/plants.py) fails it, with one line naming the variant and the
worst tensor. The compiled variants' builds take minutes on 2 cores: those tests are slow (.ci/run)."""

from __future__ import annotations

import math
import shutil
from dataclasses import replace
from typing import ClassVar

import pytest
import torch

from resnet_lab.data import DataConfig, LoaderConfig, load_datasets
from resnet_lab.engine.run import RunConfig
from resnet_lab.perf import equivalence as eq
from resnet_lab.perf.plants import PLANTS
from resnet_lab.perf.variants import VARIANTS
from resnet_lab.suite.benchmarking import EquivalenceGate, run_training_benchmark
from resnet_lab.suite.options import LabOptions

pytest_plugins = ["pytester"]

TINY = DataConfig(train_size=256, test_size=16)
BASE = RunConfig(
    device="cpu", epochs=1, max_batches=1, eval_batches=0, loader=LoaderConfig(batch_size=8, num_workers=0)
)
# Where each plant goes: copy-step and loader bugs into the device-resident loader's path (`best` minus its
# process-wide malloc tuning), the rest into the PIL loader's `channels-last`; never into eager's code.
DEVICE_PATH_PLANTS = {"flip-in-copy", "wrong-mean-std", "labels-shifted", "partial-batch-dropped"}


def variant_config(name: str) -> RunConfig:
    return VARIANTS[name].run_config(BASE, "smoke")


@pytest.fixture(scope="module")
def cache() -> eq.ReferenceCache:
    train_set, _ = load_datasets(TINY)
    return eq.ReferenceCache(train_set)


@pytest.mark.slow  # a full check per case (~10-40 s each on 2 cores); the smoke run checks every CPU variant
@pytest.mark.parametrize("name", ["eager", "channels-last", "best"])
def test_every_variant_that_runs_on_this_cpu_passes(cache, name):
    record = eq.check_variant(variant_config(name), cache)
    assert record["verdict"] == "pass", eq.failure_line(name, record)
    assert not record["mismatches"] and record["tensors_compared"] > 100
    assert set(record["kinds"]) == set(eq.KINDS)  # loss, grads, params, momentum buffers, BN running stats all compared
    assert record["worst"]["ratio"] <= 1.0 and record["check_s"] > 0 and record["build_s"] > 0


@pytest.mark.slow  # a full check per case (~10-40 s each on 2 cores); the smoke run checks every CPU variant
def test_eager_rerun_sits_on_its_own_reference(cache):
    # Not bit for bit on this CPU (seed 0: an eager rerun differs from the reference run), but far inside the bound.
    record = eq.check_variant(variant_config("eager"), cache)
    assert record["verdict"] == "pass" and all(kind["needed_tolerance"] == 0.0 for kind in record["kinds"].values())


@pytest.mark.slow  # a full check per case (~10-40 s each on 2 cores); the smoke run checks every CPU variant
@pytest.mark.parametrize("plant", list(PLANTS))
def test_each_planted_bug_fails_the_check_of_the_one_variant_it_is_planted_in(cache, plant):
    name = "best" if plant in DEVICE_PATH_PLANTS else "channels-last"
    record = eq.check_variant(variant_config(name), cache, PLANTS[plant])
    line = eq.failure_line(name, record)
    assert record["verdict"] == "fail", f"{plant} passed: worst {record['worst']}"
    assert line.startswith(f"C8 variant '{name}' does not train what eager trains: ") and "\n" not in line


def test_a_failing_variant_runs_no_timed_epoch_and_fails_with_one_line(cache, monkeypatch):
    built = []
    monkeypatch.setattr("resnet_lab.suite.benchmarking.LabRun", lambda *a, **k: built.append(a))

    class Bench:
        extra_info: ClassVar[dict] = {}

        def pedantic(self, *a, **k):
            raise AssertionError("no timed epoch may run after a failed check")

    failures: dict = {}
    gate = EquivalenceGate(
        cache, failures, "channels-last", "test_c8_variant[variant=channels-last-device=cpu]", PLANTS["loss-x1.05"]
    )
    bench = Bench()
    with pytest.raises(pytest.fail.Exception) as failed:
        run_training_benchmark(
            bench, variant_config("channels-last"), LabOptions(), cache.train_set, None, equivalence=gate
        )
    worst = bench.extra_info["equivalence"]["worst"]
    assert str(failed.value).startswith("C8 variant 'channels-last' does not train what eager trains: loss/epoch is ")
    assert (
        f"{worst['ratio']:.3g}x its bound" in str(failed.value) and worst["ratio"] > 1 and "\n" not in str(failed.value)
    )
    assert not built and bench.extra_info["equivalence"]["verdict"] == "fail"
    assert failures["test_c8_variant[variant=channels-last-device=cpu]"]["worst"]["tensor"] == "loss/epoch"


def test_a_failed_check_is_one_failure_not_also_a_teardown_error(pytester):
    # Under the suite's `filterwarnings = error`, pytest-benchmark's "fixture was not used" teardown warning
    # would add an ERROR to the failed check's one line (seen in CI); the filter is scoped to the failing test.
    pytester.makeini("[pytest]\nfilterwarnings =\n    error\n")
    pytester.makepyfile(
        """
        from resnet_lab.suite.benchmarking import fail_before_timing

        def test_fails(benchmark):
            fail_before_timing("C8 variant 'x' does not train what eager trains")

        def test_forgets(benchmark):
            pass
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1, errors=1)  # test_forgets still errors: the filter did not leak
    result.stdout.fnmatch_lines(["FAILED *::test_fails*", "ERROR *::test_forgets*"])
    assert "ERROR at teardown of test_fails" not in result.stdout.str()


@pytest.mark.slow  # a full check per case (~10-40 s each on 2 cores); the smoke run checks every CPU variant
def test_best_on_a_cpu_checks_inside_its_own_isolated_process(cache, monkeypatch):
    monkeypatch.setattr(LabOptions, "data_config", property(lambda self: TINY))
    config = replace(variant_config("best"), epochs=1)
    assert config.changes_process
    gate = EquivalenceGate(cache, {}, "best", "best")
    seen = []
    real = eq.observe_variant
    monkeypatch.setattr(
        eq, "observe_variant", lambda *a: seen.append(a) or real(*a)
    )  # would be called here if not isolated

    class Bench:
        extra_info: ClassVar[dict] = {}
        rounds: ClassVar[list] = []

        def pedantic(self, fn, rounds, iterations, warmup_rounds):
            self.rounds += [fn() for _ in range(rounds)]

    bench = Bench()
    run_training_benchmark(bench, config, LabOptions(), cache.train_set, None, equivalence=gate)
    assert bench.extra_info["equivalence"]["verdict"] == "pass" and len(bench.rounds) == 1
    assert not seen  # the variant's path ran in the child


@pytest.mark.slow  # a full check per case (~10-40 s each on 2 cores); the smoke run checks every CPU variant
def test_the_references_see_the_same_first_batch_and_weights(cache):
    # Guards the reference's inputs: before any update, eager fp32 and fp64 start from the same weights and the
    # same normalized batch, so their first-batch losses agree to fp32 rounding (measured 1.3e-7 relative at
    # seed 0). Their later distance (4e-3 on loss/epoch after 3 steps) is not a feeding difference: ReLU
    # activations within rounding of zero take the other side of the kink in fp32 (8 of ~2.6M at seed 0), which
    # moves BN-parameter and upstream gradients by ~1e-3, and lr 0.1 at batch 16 amplifies it step by step
    # (results/equivalence-margins/README.md).
    batches = eq.check_batches(cache.train_set, 0, full_batches=1, partial=0)
    fp64 = eq.fp64_path(BASE, batches)
    eager = eq.run_path(eq.eager_config(BASE), batches)
    assert fp64.exact == eager.exact and fp64.exact["batches"] == 1
    loss64, loss32 = float(fp64.tensors["loss/epoch"]), float(eager.tensors["loss/epoch"])
    assert abs(loss32 - loss64) <= 1e-6 * loss64, (loss32, loss64)


def test_the_rule_sees_a_rescaling_that_a_cosine_would_not():
    ref = torch.linspace(1, 2, 1000, dtype=torch.float64)

    def obs(t: torch.Tensor) -> eq.Observation:
        return eq.Observation(
            {"buffer/w": t, "loss/epoch": torch.tensor(1.0, dtype=torch.float64)},
            {"batches": 1, "initial_weights_sum": 0.0},
        )

    refs = eq.References(obs(ref), obs(ref.float().double()), 0.0)
    scaled = obs(ref * 1.05)
    assert torch.nn.functional.cosine_similarity(ref, ref * 1.05, dim=0) > 0.9999
    record = eq.compare(scaled, refs, "float32")
    assert record["verdict"] == "fail" and record["worst"]["tensor"] == "buffer/w"
    assert record["worst"]["relative_error"] == pytest.approx(0.05)
    assert eq.compare(obs(ref.float().double()), refs, "float32")["verdict"] == "pass"
    nan = obs(torch.full_like(ref, math.nan))
    assert eq.compare(nan, refs, "float32")["verdict"] == "fail"


def test_exact_facts_must_match():
    t = {"loss/epoch": torch.tensor(1.0, dtype=torch.float64)}
    refs = eq.References(
        eq.Observation(t, {"batches": 3, "initial_weights_sum": 1.0}), eq.Observation(t, {"batches": 3}), 0.0
    )
    record = eq.compare(eq.Observation(t, {"batches": 2, "initial_weights_sum": 1.0}), refs, "float32")
    assert record["verdict"] == "fail" and record["mismatches"] == ["batches: 2 vs eager 3"]
    assert eq.failure_line("x", record) == "C8 variant 'x' does not train what eager trains: batches: 2 vs eager 3"
    other_weights = eq.compare(eq.Observation(t, {"batches": 3, "initial_weights_sum": 2.0}), refs, "float32")
    assert other_weights["mismatches"] == ["initial weights differ from the reference's"]


needs_compiler = pytest.mark.skipif(
    shutil.which("g++") is None, reason="Inductor's CPU backend needs a C++ compiler (g++)"
)


@pytest.mark.slow
@needs_compiler
@pytest.mark.parametrize("name", ["compile-default", "compile-reduce-overhead", "compile-max-autotune"])
def test_the_compiled_variants_pass(cache, name):
    record = eq.check_variant(VARIANTS[name].run_config(BASE, "full"), cache)
    assert record["verdict"] == "pass", eq.failure_line(name, record)
    assert record["build_s"] > 0


@pytest.mark.slow
@needs_compiler
def test_a_bug_planted_in_a_compiled_variant_fails(cache):
    record = eq.check_variant(
        VARIANTS["compile-default"].run_config(BASE, "full"), cache, PLANTS["weight-decay-skipped"]
    )
    assert record["verdict"] == "fail", record["worst"]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available on this machine")
@pytest.mark.parametrize("name", ["eager", "cuda-graph", "best", "channels-last-bf16"])
def test_the_cuda_variants_pass_and_a_bug_in_the_captured_step_fails(name):
    train_set, _ = load_datasets(TINY)
    cache = eq.ReferenceCache(train_set)
    config = VARIANTS[name].run_config(replace(BASE, device="cuda"), "smoke")
    record = eq.check_variant(config, cache)
    assert record["verdict"] == "pass", eq.failure_line(name, record)
    if config.graph_step:  # the check reaches a replay of the captured step, and a bug captured in it fails
        assert record["images"] == (eq.full_batches_for(config) * eq.CHECK_BATCH_SIZE + eq.CHECK_PARTIAL)
        assert eq.check_variant(config, cache, PLANTS["step-twice"])["verdict"] == "fail"
