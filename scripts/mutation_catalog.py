"""What scripts/mutation.py knows about its mutants: the survivors that are equivalent (left out of the score),
those no CPU-only test can see (counted, with the reason), and the scripted mutations of what mutmut does not
touch, each with the tests that must kill it."""

from __future__ import annotations

from dataclasses import dataclass

# Survivors that behave exactly like the original, left out of the score. Mutant numbers follow
# the source: after changing one of these functions, rerun and check each entry with `mutmut show NAME`.
_DROPPED = (
    "iterator = '' instead of None: either drops the loop's last reference "
    "to the DataLoader iterator, which is what shuts its workers down"
)
_SAME_MATRICES = "the matrices' values (seed, generator) do not change a dense matmul's FLOPs or its timing"
EQUIVALENT: dict[str, str] = {
    "resnet_lab.perf.flops.x_train_step_flops__mutmut_24": (
        "FlopCounterMode(display=None): None is falsy, nothing is printed either way"
    ),
    "resnet_lab.perf.flops.x_train_step_flops__mutmut_41": (
        "FlopCounterMode(display=None): None is falsy, nothing is printed either way"
    ),
    **{f"resnet_lab.perf.flops.x_measure_peak_flops__mutmut_{n}": _SAME_MATRICES for n in (33, 35, 38, 45, 47, 54, 56)},
    "resnet_lab.spec.presets.x_extension_counts__mutmut_6": (
        "max(C3_DEFAULT_WORKERS[1], 4 x CPUs) differs from max(16, ...) only "
        "below 16, where range(20, limit + 1) is empty anyway"
    ),
    "resnet_lab.spec.presets.x_extension_counts__mutmut_7": (
        "max(C3_DEFAULT_WORKERS[-2], 4 x CPUs) differs from max(16, ...) only "
        "below 16, where range(20, limit + 1) is empty anyway"
    ),
    "resnet_lab.spec.presets.x_extension_counts__mutmut_21": (
        "limit = 4 x CPUs is a multiple of 4 and the counts are 20 + 4k: range "
        "stops at the same count with limit + 1 or limit + 2"
    ),
    "resnet_lab.engine.metrics.xǁEpochMetricsǁsummary__mutmut_20": 'float("NAN") is float("nan")',
    "resnet_lab.engine.metrics.xǁEpochMetricsǁsummary__mutmut_28": 'float("NAN") is float("nan")',
    **{
        f"resnet_lab.engine.metrics.xǁEpochMetricsǁsummary__mutmut_{n}": "zip(strict=...) of `correct` and `seen`: "
        "both hold one count per class, so strict can never fire"
        for n in (8, 11, 12)
    },
    "resnet_lab.engine.loop.x_train_one_epoch__mutmut_223": 'float("INF") is float("inf")',
    **{
        name: _DROPPED
        for name in (
            "resnet_lab.engine.loop.x_train_one_epoch__mutmut_167",
            "resnet_lab.engine.loop.x_train_one_epoch__mutmut_192",
            "resnet_lab.engine.loop.x_evaluate__mutmut_70",
        )
    },
}
# Survivors that are not equivalent but that no deterministic test on a CPU-only machine can see;
# they count against the score, and the summary gives the reason.
_CPU_ONLY = (
    "device=None leaves the batch or the metric sums on the CPU, which on a CPU-only machine is the training device; "
    "on a GPU the loop would mix devices and fail (the loop cannot run on the meta device: it reads the loss back)"
)
UNDETECTABLE: dict[str, str] = {
    "resnet_lab.engine.loop.x_train_one_epoch__mutmut_24": _CPU_ONLY,
    "resnet_lab.engine.loop.x_train_one_epoch__mutmut_97": _CPU_ONLY,
    "resnet_lab.engine.loop.x_evaluate__mutmut_8": _CPU_ONLY,
    "resnet_lab.engine.loop.x_evaluate__mutmut_29": _CPU_ONLY,
}


@dataclass(frozen=True)
class Scripted:
    """One hand-written mutation: replace `old` (which must occur exactly once) in `path` by `new`."""

    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


# The loop's pinned tests (tests/pinnedtime.py's fake clock), one module per concern.
PINNED = (
    "tests/test_pinned_timing.py",
    "tests/test_clock.py",
    "tests/test_loop_failures.py",
    "tests/test_epoch_metrics.py",
    "tests/test_evaluate.py",
    "tests/test_summarize.py",
)
TIMING = "tests/test_timing.py"
SUITE = "tests/test_suite_options.py"
COMPARE = ("tests/test_compare_rule.py", "tests/test_compare.py")
FLOPS = "tests/test_flops.py"
BENCH = "tests/test_benchmarking.py"
REGION_END = "            self.add(name, self.now() - start)"

SCRIPTED = (
    # SyncClock.region: mutmut skips decorated functions
    Scripted(
        "timing.region: end minus start reversed",
        "resnet_lab/engine/clock.py",
        REGION_END,
        "            self.add(name, start - self.now())",
        (*PINNED, TIMING),
    ),
    Scripted(
        "timing.region: adds the end time, not the span",
        "resnet_lab/engine/clock.py",
        REGION_END,
        "            self.add(name, self.now())",
        (*PINNED, TIMING),
    ),
    Scripted(
        "timing.region: overwrites the total",
        "resnet_lab/engine/clock.py",
        REGION_END,
        "            self.totals[name] = self.now() - start",
        (*PINNED, TIMING),
    ),
    Scripted(
        "timing.region: no sync at the start",
        "resnet_lab/engine/clock.py",
        "        start = self.now()\n",
        "        start = self.timer()\n",
        (*PINNED, TIMING),
    ),
    Scripted(
        "timing.region: no sync at the end",
        "resnet_lab/engine/clock.py",
        REGION_END,
        "            self.add(name, self.timer() - start)",
        (*PINNED, TIMING),
    ),
    Scripted(
        "timing.region: a raising body is not counted",
        "resnet_lab/engine/clock.py",
        "        try:\n            yield\n        finally:\n" + REGION_END,
        "        yield\n" + REGION_END.replace("            ", "        "),
        (*PINNED, TIMING),
    ),
    Scripted(
        "timing.SyncClock: CPU time instead of wall time",
        "resnet_lab/engine/clock.py",
        "    timer: Timer = time.perf_counter",
        "    timer: Timer = time.process_time",
        (*PINNED, TIMING),
    ),
    # module constants
    Scripted(
        "train.PHASES without startup",
        "resnet_lab/engine/loop.py",
        'PHASES = ("startup", "load",',
        'PHASES = ("load",',
        PINNED,
    ),
    Scripted(
        "train.SUMMED without startup_s",
        "resnet_lab/engine/loop.py",
        'SUMMED = ("startup_s", ',
        "SUMMED = (",
        PINNED,
    ),
    Scripted("suite.C3_STEP 4 -> 3", "resnet_lab/spec/presets.py", "C3_STEP = 4", "C3_STEP = 3", (SUITE,)),
    Scripted("suite.C3_STEP 4 -> 5", "resnet_lab/spec/presets.py", "C3_STEP = 4", "C3_STEP = 5", (SUITE,)),
    Scripted(
        "suite.C3_TOLERANCE 0.10 -> 0.05",
        "resnet_lab/spec/presets.py",
        "C3_TOLERANCE = 0.10",
        "C3_TOLERANCE = 0.05",
        (SUITE,),
    ),
    Scripted(
        "suite.C3_TOLERANCE 0.10 -> 0.15",
        "resnet_lab/spec/presets.py",
        "C3_TOLERANCE = 0.10",
        "C3_TOLERANCE = 0.15",
        (SUITE,),
    ),
    Scripted(
        "suite.C3_DEFAULT_WORKERS without 16",
        "resnet_lab/spec/presets.py",
        "C3_DEFAULT_WORKERS = (0, 4, 8, 12, 16)",
        "C3_DEFAULT_WORKERS = (0, 4, 8, 12)",
        (SUITE,),
    ),
    Scripted(
        "suite.PRESETS smoke epochs 2 -> 3",
        "resnet_lab/spec/presets.py",
        'Preset("smoke", epochs=2,',
        'Preset("smoke", epochs=3,',
        (SUITE,),
    ),
    Scripted(
        "suite.PRESETS smoke max_batches 2 -> 3",
        "resnet_lab/spec/presets.py",
        "epochs=2, max_batches=2,",
        "epochs=2, max_batches=3,",
        (SUITE,),
    ),
    Scripted(
        "suite.PRESETS smoke eval_batches 2 -> 3",
        "resnet_lab/spec/presets.py",
        "max_batches=2, eval_batches=2,",
        "max_batches=2, eval_batches=3,",
        (SUITE,),
    ),
    Scripted(
        "suite.PRESETS smoke profile_steps 3 -> 4",
        "resnet_lab/spec/presets.py",
        "profile_steps=3, c8_epochs=2",
        "profile_steps=4, c8_epochs=2",
        (SUITE,),
    ),
    Scripted(
        "suite.PRESETS smoke c8_epochs 2 -> 3",
        "resnet_lab/spec/presets.py",
        "profile_steps=3, c8_epochs=2",
        "profile_steps=3, c8_epochs=3",
        (SUITE,),
    ),
    Scripted(
        "suite.PRESETS full epochs 5 -> 4",
        "resnet_lab/spec/presets.py",
        'Preset("full", epochs=5,',
        'Preset("full", epochs=4,',
        (SUITE,),
    ),
    Scripted(
        "suite.PRESETS full max_batches None -> 391",
        "resnet_lab/spec/presets.py",
        "epochs=5, max_batches=None,",
        "epochs=5, max_batches=391,",
        (SUITE,),
    ),
    Scripted(
        "suite.PRESETS full eval_batches None -> 100",
        "resnet_lab/spec/presets.py",
        "max_batches=None, eval_batches=None,",
        "max_batches=None, eval_batches=100,",
        (SUITE,),
    ),
    Scripted(
        "suite.PRESETS full profile_steps 5 -> 4",
        "resnet_lab/spec/presets.py",
        "profile_steps=5, c8_epochs=10",
        "profile_steps=4, c8_epochs=10",
        (SUITE,),
    ),
    Scripted(
        "suite.PRESETS full c8_epochs 10 -> 9",
        "resnet_lab/spec/presets.py",
        "profile_steps=5, c8_epochs=10",
        "profile_steps=5, c8_epochs=9",
        (SUITE,),
    ),
    Scripted("compare.NOISE_K 1.5 -> 1.0", "resnet_lab/results/metrics.py", "NOISE_K = 1.5", "NOISE_K = 1.0", COMPARE),
    Scripted("compare.NOISE_K 1.5 -> 2.0", "resnet_lab/results/metrics.py", "NOISE_K = 1.5", "NOISE_K = 2.0", COMPARE),
    Scripted(
        "compare.MIN_DELTA_S 0.05 -> 0.03",
        "resnet_lab/results/metrics.py",
        "MIN_DELTA_S = 0.05",
        "MIN_DELTA_S = 0.03",
        COMPARE,
    ),
    Scripted(
        "compare.MIN_DELTA_S 0.05 -> 0.07",
        "resnet_lab/results/metrics.py",
        "MIN_DELTA_S = 0.05",
        "MIN_DELTA_S = 0.07",
        COMPARE,
    ),
    Scripted(
        "flops.DEFAULT_MATMUL_N cpu 2048 -> 1024",
        "resnet_lab/perf/flops.py",
        '{"cpu": 2048,',
        '{"cpu": 1024,',
        (FLOPS,),
    ),
    Scripted(
        "benchmarking.UNTIMED_SHARE 0.05 -> 0.04",
        "resnet_lab/suite/benchmarking.py",
        "UNTIMED_SHARE = 0.05",
        "UNTIMED_SHARE = 0.04",
        (BENCH,),
    ),
    Scripted(
        "benchmarking.UNTIMED_SHARE 0.05 -> 0.06",
        "resnet_lab/suite/benchmarking.py",
        "UNTIMED_SHARE = 0.05",
        "UNTIMED_SHARE = 0.06",
        (BENCH,),
    ),
    Scripted(
        "benchmarking.UNTIMED_FLOOR_S 0.05 -> 0.04",
        "resnet_lab/suite/benchmarking.py",
        "UNTIMED_FLOOR_S = 0.05",
        "UNTIMED_FLOOR_S = 0.04",
        (BENCH,),
    ),
    Scripted(
        "benchmarking.UNTIMED_FLOOR_S 0.05 -> 0.06",
        "resnet_lab/suite/benchmarking.py",
        "UNTIMED_FLOOR_S = 0.05",
        "UNTIMED_FLOOR_S = 0.06",
        (BENCH,),
    ),
)
