"""`resnet-lab compare BASE NEW`: pair two saved runs' benchmarks, print old/new/ratio, apply thresholds.

Timing figures are `epoch_s` (pytest-benchmark's own statistics over rounds,
i.e. over epochs) and the phases `startup_s`, `load_s`, `copy_s`, `train_s`, `metrics_s`,
`shutdown_s` (statistics over the per-epoch records in extra_info, computed the same way).
Quality figures are `loss`, `top1`, `test_loss`, `test_top1` (last epoch, or
the evaluation after it). Thresholds are `--fail METRIC[:STAT]:[+|-]AMOUNT[%]`.

The timing rule is noise-aware (see `timing_violation`): a run is only called
slower when the change is beyond the threshold *and* beyond what the two runs'
own spread over their steady rounds (the warm-up epoch left out) explains *and*
above an absolute floor. Where neither run has two steady rounds there is no
spread, and the threshold and the floor alone decide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import LabError
from .cputime import cpu_key, kind_note
from .metrics import (  # noqa: F401  (re-exported: compare's figures and thresholds are read from here)
    CI_THRESHOLDS,
    METRICS,
    MIN_DELTA_S,
    MIN_SPREAD_ROUNDS,
    NOISE_K,
    STATS,
    TABLE_METRICS,
    Metric,
    Threshold,
    Value,
    metric_value,
    parse_threshold,
    spread,
    unusable_figure,
)
from .runs import Bench, Run

# ---------------------------------------------------------------------------
# pairing and checking
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Pairing:
    pairs: list[tuple[Bench, Bench]]
    only_base: list[Bench]
    only_new: list[Bench]


def pair_benchmarks(base: Sequence[Bench], new: Sequence[Bench]) -> Pairing:
    """Pair by fullname + params; what is left, by name + params (a run started from another folder)."""
    pairs: list[tuple[Bench, Bench]] = []
    new_left = list(new)
    base_left: list[Bench] = []
    for key in (Bench.pair_key, Bench.name_key):
        index: dict[tuple[str, str, int], list[Bench]] = {}
        for bench in new_left:
            index.setdefault(key(bench), []).append(bench)
        still: list[Bench] = []
        for bench in base if key is Bench.pair_key else base_left:
            candidates = index.get(key(bench))
            if candidates:
                match = candidates.pop(0)
                pairs.append((bench, match))
                new_left.remove(match)
            else:
                still.append(bench)
        base_left = still
    return Pairing(pairs, base_left, new_left)


@dataclass(frozen=True)
class Check:
    threshold: Threshold
    bench: Bench
    old: Value
    new: Value | None  # None: NEW lacks the figure BASE has, or records it as NaN/inf (always a violation)
    violated: bool
    enforced: bool
    margin: float = 0.0  # the noise margin applied (timing only)
    problem: str = ""
    why_not_enforced: str = ""

    @property
    def without_spread(self) -> bool:
        """A timing check where neither run had the steady rounds for a spread: no noise margin applied."""
        return (
            self.threshold.metric.kind == "timing"
            and self.new is not None
            and self.old.spread is None
            and self.new.spread is None
        )

    def line(self) -> str:
        t, m = self.threshold, self.threshold.metric
        if self.new is None:
            return f"{bench_label(self.bench)}: {m.name} {self.problem} in NEW (BASE {t.stat} {self.old.value:.4g})"
        change = self.new.value - self.old.value
        rel = f"{change / self.old.value:+.1%}" if self.old.value else "n/a"
        unit = {"s": " s", "%": " %", "": ""}[m.unit]
        text = (
            f"{bench_label(self.bench)}: {m.name} {t.stat} {self.old.value:.4g}{unit} -> {self.new.value:.4g}{unit} "
            f"({rel}; threshold {t.describe_limit()}"
        )
        if self.without_spread:
            text += f", no noise margin: fewer than {MIN_SPREAD_ROUNDS} steady rounds"
        elif m.kind == "timing":
            text += f", noise margin {self.margin:.3g} s"
        return text + ")"


def timing_violation(
    threshold: Threshold, old: Value, new: Value, noise_k: float, min_delta_s: float
) -> tuple[bool, float]:
    """The noise-aware rule for timing figures; returns (violated, noise margin in seconds).

    With `worse = direction x (new - old)` (positive = slower for a `+` threshold):
    violated iff  worse > threshold limit (e.g. 15% of old)
              and worse > noise_k x max(old IQR, new IQR)  (the runs' own spread over steady rounds;
                                                           a run without one contributes 0)
              and worse > min_delta_s.
    """
    worse = threshold.direction * (new.value - old.value)
    margin = noise_k * max(old.spread or 0.0, new.spread or 0.0)
    return worse > threshold.limit(old.value) and worse > margin and worse > min_delta_s, margin


def quality_violation(threshold: Threshold, old: Value, new: Value) -> bool:
    worse = threshold.direction * (new.value - old.value)
    return worse > threshold.limit(old.value)


def reduced_precision(bench: Bench) -> str | None:
    """The autocast dtype a benchmark trained in (e.g. 'bfloat16'); None for fp32."""
    return bench.extra("amp_dtype") or None


def run_checks(
    pairs: Sequence[tuple[Bench, Bench]],
    thresholds: Sequence[Threshold],
    *,
    enforce_timing: bool,
    same_machine: bool,
    noise_k: float = NOISE_K,
    min_delta_s: float = MIN_DELTA_S,
) -> list[Check]:
    """Timing is enforced where `enforce_timing`; quality everywhere, except reduced-precision training
    across machines: bf16/fp16 kernels differ by CPU/GPU (e.g. native bf16 vs emulation), and a few steps
    at lr 0.1 amplify that rounding into a different loss, so such a quality gap says nothing about the code."""
    checks = []
    for threshold in thresholds:
        for base, new in pairs:
            old_v = metric_value(base, threshold.metric, threshold.stat)
            if old_v is None:
                continue
            problem = unusable_figure(new, threshold.metric, threshold.stat)
            if problem:
                checks.append(Check(threshold, new, old_v, None, violated=True, enforced=True, problem=problem))
                continue
            new_v = metric_value(new, threshold.metric, threshold.stat)
            assert new_v is not None  # unusable_figure found the figure metric_value reads
            if threshold.metric.kind == "timing":
                violated, margin = timing_violation(threshold, old_v, new_v, noise_k, min_delta_s)
                why = "" if enforce_timing else "different machines"
                checks.append(Check(threshold, new, old_v, new_v, violated, not why, margin, why_not_enforced=why))
            else:
                why = quality_not_enforced(base, new, same_machine)
                checks.append(
                    Check(
                        threshold,
                        new,
                        old_v,
                        new_v,
                        quality_violation(threshold, old_v, new_v),
                        not why,
                        why_not_enforced=why,
                    )
                )
    return checks


def quality_not_enforced(base: Bench, new: Bench, same_machine: bool) -> str:
    """Why a quality figure is not gated ('' when it is): reduced precision on either side, across machines."""
    dtype = reduced_precision(base) or reduced_precision(new)
    return f"{dtype} numerics differ between machines" if dtype and not same_machine else ""


# ---------------------------------------------------------------------------
# machines and workloads
# ---------------------------------------------------------------------------


def machine_difference(base: Run, new: Run) -> str | None:
    a, b = base.machine(), new.machine()
    if a.identity == b.identity:
        return None
    return f"BASE ran on {a.text}; NEW ran on {b.text}"


VERSION_KEYS = ("torch", "cuda", "cudnn")


def version_difference(base: Run, new: Run) -> str | None:
    """`torch 2.14.1 vs 2.15.0` for the library versions (machine_info) that differ between the runs."""
    diffs = [
        f"{k} {base.machine_info.get(k)} vs {new.machine_info.get(k)}"
        for k in VERSION_KEYS
        if base.machine_info.get(k) != new.machine_info.get(k)
    ]
    return "; ".join(diffs) or None


def workload_difference(base: Run, new: Run) -> str | None:
    keys = ("preset", "data", "epochs", "max_batches")
    diffs = [f"{k} {base.lab.get(k)!r} vs {new.lab.get(k)!r}" for k in keys if base.lab.get(k) != new.lab.get(k)]
    return "; ".join(diffs) or None


# ---------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------


def bench_label(bench: Bench) -> str:
    return f"{bench.group} {bench.name}" if bench.group else bench.name


def _fmt(metric: Metric, value: Value | None) -> str:
    if value is None:
        return "not recorded"
    if metric.unit == "s":
        return f"{value.value:.4f} s"
    if metric.unit == "%":
        return f"{value.value:.2f} %"
    return f"{value.value:.4f}"


def _ratio(metric: Metric, old: Value | None, new: Value | None) -> tuple[str, str]:
    if old is None or new is None:
        return "", ""
    ratio = f"{new.value / old.value:.2f}x" if old.value else "n/a"
    if metric.unit == "%":
        return ratio, f"{new.value - old.value:+.2f} pt"
    change = f"{(new.value - old.value) / old.value:+.1%}" if old.value else "n/a"
    return ratio, change


def _kind(base: Bench, new: Bench, name: str, old: Value | None, new_value: Value | None) -> str:
    """' (waits more: CPU 1.00x)' after a wall-time figure that grew while its CPU time beside it did not; ''
    otherwise."""
    twin = METRICS.get(cpu_key(name)) if name.endswith("_s") and "_cpu_" not in name else None
    if twin is None or old is None or new_value is None or not old.value:
        return ""
    old_cpu, new_cpu = metric_value(base, twin, twin.default_stat), metric_value(new, twin, twin.default_stat)
    if old_cpu is None or new_cpu is None or not old_cpu.value:
        return ""
    return kind_note(new_value.value / old.value, new_cpu.value / old_cpu.value)


def table_rows(pairs: Sequence[tuple[Bench, Bench]]) -> list[list[str]]:
    rows = []
    for base, new in pairs:
        label = bench_label(new)
        for name in TABLE_METRICS:
            metric = METRICS[name]
            old_v, new_v = (
                metric_value(base, metric, metric.default_stat),
                metric_value(new, metric, metric.default_stat),
            )
            if old_v is None and new_v is None:
                continue
            ratio, change = _ratio(metric, old_v, new_v)
            rows.append(
                [
                    label,
                    name,
                    metric.default_stat,
                    _fmt(metric, old_v),
                    _fmt(metric, new_v),
                    ratio,
                    change + _kind(base, new, name, old_v, new_v),
                ]
            )
            label = ""
    return rows


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=False)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# the comparison
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    text: str
    warnings: list[str]
    checks: list[Check]

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.violated and c.enforced]


def compare_runs(
    base: Run,
    new: Run,
    thresholds: Sequence[Threshold],
    *,
    cross_machine: bool = False,
    noise_k: float = NOISE_K,
    min_delta_s: float = MIN_DELTA_S,
    groups: set[str] | None = None,
) -> Outcome:
    """Everything `compare` prints and decides, as data (the CLI only prints it and sets the exit status)."""
    base_benches = [b for b in base.benchmarks if groups is None or b.group in groups]
    new_benches = [b for b in new.benchmarks if groups is None or b.group in groups]
    pairing = pair_benchmarks(base_benches, new_benches)
    if not pairing.pairs:
        which = f" in groups {', '.join(sorted(groups))}" if groups else ""
        raise LabError(
            f"'{base.label}' ({len(base_benches)} benchmarks) and '{new.label}' ({len(new_benches)} benchmarks) "
            f"have no benchmark in common{which}; compare runs of the same suite"
        )
    warnings = []
    machines = machine_difference(base, new)
    if machines:
        if cross_machine:
            warnings.append(f"different machines ({machines}); timing thresholds enforced anyway (--cross-machine)")
        else:
            warnings.append(
                f"different machines ({machines}); timing thresholds are not enforced "
                "(pass --cross-machine to enforce them), quality thresholds are "
                "(except for reduced-precision training)"
            )
    versions = version_difference(base, new)
    if versions:
        warnings.append(f"different library versions ({versions}); the timings include that difference")
    workload = workload_difference(base, new)
    if workload:
        warnings.append(f"the runs did different work ({workload}); their timings measure different amounts of work")
    checks = run_checks(
        pairing.pairs,
        thresholds,
        enforce_timing=cross_machine or not machines,
        same_machine=not machines,
        noise_k=noise_k,
        min_delta_s=min_delta_s,
    )
    if not any(c.enforced for c in checks):
        # A gate that checked nothing must not pass: every figure missing or NaN in BASE, or only timing
        # thresholds between two machines.
        why = (
            "no threshold was enforced (timing thresholds between different "
            "machines; pass --cross-machine, or a quality threshold)"
            if checks
            else f"BASE has no finite figure any threshold reads ({', '.join(t.text for t in thresholds)}) in the "
            f"{len(pairing.pairs)} benchmarks in common"
        )
        raise LabError(f"nothing to compare between '{base.label}' and '{new.label}': {why}")

    out = [f"BASE {base.describe()}", f"NEW  {new.describe()}", ""]
    out.append(
        format_table(["benchmark", "metric", "stat", "old", "new", "ratio", "change"], table_rows(pairing.pairs))
    )
    for title, only in (("only in BASE", pairing.only_base), ("only in NEW", pairing.only_new)):
        if only:
            out.append(f"\n{title} ({len(only)}): " + ", ".join(bench_label(b) for b in only))
    out.append(f"\nthresholds (timing: noise-aware, k={noise_k:g}, min delta {min_delta_s:g} s):")
    for threshold in thresholds:
        mine = [c for c in checks if c.threshold is threshold]
        bad = [c for c in mine if c.violated]
        reasons = sorted({c.why_not_enforced for c in mine if c.new is not None and c.why_not_enforced})
        unenforced = sum(1 for c in mine if c.new is not None and c.why_not_enforced)
        note = f" ({unenforced} not enforced: {'; '.join(reasons)})" if reasons else ""
        out.append(f"  {threshold.text}: {len(mine)} checked, {len(bad)} beyond it{note}")
        for check in bad:
            tag = "FAIL" if check.enforced else "warn"
            out.append(
                f"    {tag} {check.line()}"
                + (f" [not enforced: {check.why_not_enforced}]" if not check.enforced else "")
            )
    unspread = sum(c.without_spread for c in checks)
    if unspread:
        out.append(
            f"  note: {unspread} timing checks had fewer than {MIN_SPREAD_ROUNDS} "
            "steady (non-warm-up) rounds in both runs, "
            "so no spread to measure noise by: the threshold and --min-delta alone decide them"
        )
    return Outcome("\n".join(out), warnings, checks)
