"""Mutation testing of the functions that make the suite's numbers: one command, one score.

    python scripts/mutation.py            # 15-30 minutes on 2 shared cores, depending on their load
    python scripts/mutation.py --scripted-only

Two parts:

1. mutmut (configured in pyproject.toml's [tool.mutmut]) mutates the clock
   (engine/clock.py), the loop's phase accounting (engine/loop.py: train_one_epoch,
   evaluate, summarize; engine/metrics.py: EpochMetrics), the compare rule
   (results/metrics.py: Threshold.limit; results/compare.py: timing_violation, quality_violation,
   run_checks), the FLOP/peak accounting (perf/flops.py: train_step_flops,
   measure_peak_flops, achieved_flops, mfu) and the C3 rule (spec/presets.py:
   c32_answer, still_improving, extension_counts; suite/options.py: LabOptions),
   and runs the fast in-process unit tests that cover each mutant.
2. Scripted mutations for what mutmut does not touch: module-level constants
   and the body of the decorated SyncClock.region. Each is applied to a copy of
   the tree in a temporary folder and that copy's tests are run.

A mutant is killed when a test fails on it. Survivors that are equivalent on a
CPU-only machine (or in effect) are listed with the reason in EQUIVALENT
(scripts/mutation_catalog.py, beside the scripted mutations) and
left out of the score; every other survivor counts against it. The summary
(score, survivors, command, date, machine, wall time) goes to
results/mutation/summary.md and stdout.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from mutation_catalog import EQUIVALENT, SCRIPTED, UNDETECTABLE, Scripted  # this folder: on sys.path when run

ROOT = Path(__file__).resolve().parents[1]

# Function-level selection (mutmut mutant-name globs); the files are in [tool.mutmut] only_mutate.
MUTMUT_TARGETS = (
    "resnet_lab.engine.clock.*",
    "resnet_lab.engine.loop.x_train_one_epoch__mutmut_*",
    "resnet_lab.engine.metrics.xǁEpochMetricsǁ*",
    "resnet_lab.engine.loop.x_evaluate__mutmut_*",
    "resnet_lab.engine.loop.x_summarize__mutmut_*",
    "resnet_lab.results.metrics.xǁThresholdǁlimit__mutmut_*",
    "resnet_lab.results.compare.x_timing_violation__mutmut_*",
    "resnet_lab.results.compare.x_quality_violation__mutmut_*",
    "resnet_lab.results.compare.x_run_checks__mutmut_*",
    "resnet_lab.perf.flops.x_train_step_flops__mutmut_*",
    "resnet_lab.perf.flops.x_measure_peak_flops__mutmut_*",
    "resnet_lab.perf.flops.x_achieved_flops__mutmut_*",
    "resnet_lab.perf.flops.x_mfu__mutmut_*",
    "resnet_lab.spec.presets.x_c32_answer__mutmut_*",
    "resnet_lab.spec.presets.x_still_improving__mutmut_*",
    "resnet_lab.spec.presets.x_extension_counts__mutmut_*",
    "resnet_lab.suite.options.xǁLabOptionsǁ*",
)
DETECTED = {"killed", "timeout", "segfault", "caught by type check"}

COPIED = ("resnet_lab", "tests", "conftest.py", "pytest.ini")


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # mutmut puts ./mutants first; the scripted part sets its own
    # One thread per test process: the two parallel workers then share 2 cores without oversubscription.
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_mutmut(log: Path) -> dict[str, str]:
    """Run mutmut on MUTMUT_TARGETS; return {mutant name: status} for them."""
    with log.open("w", encoding="utf-8") as out:
        proc = subprocess.run(
            [sys.executable, "-m", "mutmut", "run", *MUTMUT_TARGETS],
            cwd=ROOT,
            env=child_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if proc.returncode != 0:
        raise SystemExit(f"mutmut run failed (exit {proc.returncode}); see {log}")
    listing = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    statuses = {}
    for line in listing.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if name and any(fnmatch.fnmatch(name, target) for target in MUTMUT_TARGETS):
            statuses[name] = status
    return statuses


def run_scripted(mutation: Scripted | None, tests: tuple[str, ...] = ()) -> str:
    """Apply one scripted mutation (None: none) to a fresh copy of the tree and run its tests there."""
    with tempfile.TemporaryDirectory(prefix="resnet-lab-mutation-") as work:
        tree = Path(work)
        for name in COPIED:
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(source, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, tree / name)
        if mutation is not None:
            tests = mutation.tests
            target = tree / mutation.path
            text = target.read_text(encoding="utf-8")
            if text.count(mutation.old) != 1:
                raise SystemExit(
                    f"scripted mutation '{mutation.name}': the original text occurs "
                    f"{text.count(mutation.old)} times in {mutation.path}"
                )
            target.write_text(text.replace(mutation.old, mutation.new), encoding="utf-8")
        env = child_env() | {"PYTHONPATH": str(tree)}
        # -k as in [tool.mutmut]: the end-to-end compare tests run the CLI twice in subprocesses and pin nothing here
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-k", "not end_to_end", *tests],
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
        )
    return (
        "survived"
        if proc.returncode == 0
        else "killed"
        if proc.returncode == 1
        else f"error (pytest exit {proc.returncode})"
    )


def run_all_scripted() -> dict[str, str]:
    """The scripted mutations, two at a time, after checking that their tests pass on the unmutated tree."""
    every_test = tuple(sorted({test for mutation in SCRIPTED for test in mutation.tests}))
    if run_scripted(None, every_test) != "survived":
        raise SystemExit(
            f"the scripted mutations' tests fail on the unmutated tree: python -m pytest {' '.join(every_test)}"
        )
    results = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        for mutation, status in zip(SCRIPTED, pool.map(run_scripted, SCRIPTED), strict=True):
            results[mutation.name] = status
            print(f"scripted: {status:9} {mutation.name}", flush=True)
    return results


def function_of(name: str) -> str:
    return re.sub(r"__mutmut_\d+$", "", name).replace("xǁ", "").replace("ǁ", ".").replace(".x_", ".")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {len(os.sched_getaffinity(0))} CPUs, Python {platform.python_version()}"


def summary(mutmut: dict[str, str], scripted: dict[str, str], seconds: float, command: str) -> str:
    per_function: dict[str, list[str]] = {}
    for name, status in mutmut.items():
        per_function.setdefault(function_of(name), []).append(status)
    for name, status in scripted.items():
        per_function.setdefault("scripted: " + name.split(":")[0].split(" ")[0], []).append(status)
    survivors = sorted(n for n, s in mutmut.items() if s not in DETECTED) + sorted(
        n for n, s in scripted.items() if s != "killed"
    )
    equivalent = [n for n in survivors if n in EQUIVALENT]
    counted = len(mutmut) + len(scripted) - len(equivalent)
    killed = sum(s in DETECTED for s in mutmut.values()) + sum(s == "killed" for s in scripted.values())
    score = killed / counted if counted else 0.0
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    lines = [
        "# Mutation testing of the measuring core",
        "",
        f"- command: `{command}`",
        f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, commit {commit}",
        f"- machine: {machine()}",
        f"- wall time: {seconds / 60:.1f} min",
        f"- mutants: {len(mutmut)} by mutmut, {len(scripted)} scripted; {len(equivalent)} equivalent (left out)",
        f"- **score: {killed} killed of {counted} non-equivalent = {score:.1%}**",
        "",
        "| function | mutants | killed | survived |",
        "|---|---:|---:|---:|",
    ]
    for function, statuses in sorted(per_function.items()):
        detected = sum(s in DETECTED for s in statuses)
        lines.append(f"| {function} | {len(statuses)} | {detected} | {len(statuses) - detected} |")
    stale = sorted(n for n in (*EQUIVALENT, *UNDETECTABLE) if n in mutmut and mutmut[n] in DETECTED)
    if stale:
        lines += [
            "",
            "Explained as survivors but killed in this run (update scripts/mutation.py): "
            + ", ".join(f"`{n}`" for n in stale),
        ]
    lines += ["", "## Survivors", ""]
    if not survivors:
        lines.append("none")
    for name in survivors:
        status = mutmut.get(name) or scripted.get(name)
        if name in EQUIVALENT:
            reason = f"equivalent, left out: {EQUIVALENT[name]}"
        else:
            reason = f"counted: {UNDETECTABLE.get(name, 'NOT EXPLAINED')}"
        lines.append(f"- `{name}` ({status}): {reason}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scripted-only", action="store_true", help="skip mutmut; run only the scripted mutations")
    parser.add_argument(
        "--out",
        default=str(ROOT / "results" / "mutation" / "summary.md"),
        metavar="PATH",
        help="where to write the summary. Default: results/mutation/summary.md",
    )
    args = parser.parse_args(argv)
    start = time.monotonic()
    mutmut: dict[str, str] = {}
    if not args.scripted_only:
        print("mutmut: mutating the selected functions and running their tests (log: mutation.log) ...", flush=True)
        shutil.rmtree(ROOT / "mutants", ignore_errors=True)  # mutmut keeps results and copies there; start afresh
        mutmut = run_mutmut(ROOT / "mutation.log")
        print(f"mutmut: {sum(s in DETECTED for s in mutmut.values())} of {len(mutmut)} killed", flush=True)
    scripted = run_all_scripted()
    command = "python scripts/mutation.py" + (" --scripted-only" if args.scripted_only else "")
    text = summary(mutmut, scripted, time.monotonic() - start, command)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
