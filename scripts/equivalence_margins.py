"""Validate C8's equivalence rule (resnet_lab/perf/equivalence.py) over many seeds: every legitimate
variant must stay below its bound with margin, every planted bug (resnet_lab/perf/plants.py) above it.

Resumable: each (seed, path) result is one line appended to OUT/runs.jsonl and skipped when rerun, so
the job can span sessions; `--summary` rewrites OUT/summary.json from the lines so far. Compiled
variants reuse torch.compiler's caches across seeds here (the shapes repeat), which changes their build
time, not their numerics; the bf16 paths run emulated where the CPU has no native bf16 (the rule's
bf16 tolerance is then checked on this CPU's kernels only).

    python scripts/equivalence_margins.py --seeds 10 --out results/equivalence-margins   (about 1 h on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from resnet_lab.data import DataConfig, load_datasets
from resnet_lab.engine.run import RunConfig
from resnet_lab.engine.step import StepConfig
from resnet_lab.perf import equivalence as eq
from resnet_lab.perf.plants import PLANTS
from resnet_lab.perf.variants import VARIANTS

DEVICE_PATH_PLANTS = {"flip-in-copy", "wrong-mean-std", "labels-shifted", "partial-batch-dropped"}
SHARED_JPEG = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz"


def paths(base: RunConfig, compiled: bool) -> dict[str, tuple[RunConfig, str | None, str]]:
    """label -> (config, plant name, expected verdict)."""
    bf16 = StepConfig(amp_dtype=torch.bfloat16)
    fp32_best = replace(VARIANTS["best"].run_config(base, "smoke"), step=StepConfig(channels_last=True))
    out: dict[str, tuple[RunConfig, str | None, str]] = {
        "channels-last": (VARIANTS["channels-last"].run_config(base, "smoke"), None, "pass"),
        "best-fp32-path": (fp32_best, None, "pass"),
        "bf16": (replace(base, step=bf16), None, "pass"),
        "channels-last-bf16": (
            replace(base, step=StepConfig(channels_last=True, amp_dtype=torch.bfloat16)),
            None,
            "pass",
        ),
        "best-bf16-path": (
            replace(fp32_best, step=StepConfig(channels_last=True, amp_dtype=torch.bfloat16)),
            None,
            "pass",
        ),
    }
    if compiled:
        for mode in ("compile-default", "compile-reduce-overhead", "compile-max-autotune"):
            out[mode] = (replace(VARIANTS[mode].run_config(base, "full"), cold_compile=False), None, "pass")
    for plant in PLANTS:
        target = "best-fp32-path" if plant in DEVICE_PATH_PLANTS else "channels-last"
        out[f"{target}+{plant}"] = (out[target][0], plant, "fail")
        bf16_target = "best-bf16-path" if plant in DEVICE_PATH_PLANTS else "bf16"
        out[f"{bf16_target}+{plant}"] = (out[bf16_target][0], plant, "fail")
    return out


def done(runs: Path) -> set[tuple[int, str]]:
    if not runs.exists():
        return set()
    return {(r["seed"], r["path"]) for r in map(json.loads, runs.read_text().splitlines()) if r}


def verdict_now(row: dict) -> str:
    """The row's verdict under the current TOLERANCES: `needed` is each kind's tolerance-free requirement
    (max over tensors of (distance - MULTIPLIER * yardstick) / norm), so rows measured under older tolerances
    are rescored exactly. Exact facts added since (e.g. optimizer hyperparameters) are not in old rows."""
    tolerances = eq.TOLERANCES["bfloat16" if "bf16" in row["path"] else "float32"]
    within = all(row["needed"].get(kind, 0.0) <= tolerances[kind] for kind in eq.KINDS)
    return "pass" if within and not row["mismatches"] else "fail"


def tolerance_use(row: dict) -> float:
    """The largest share of its current tolerance any kind needed (> 1: fails on the tolerances)."""
    tolerances = eq.TOLERANCES["bfloat16" if "bf16" in row["path"] else "float32"]
    return max(row["needed"].get(kind, 0.0) / tolerances[kind] for kind in eq.KINDS)


def margin(results: list[dict], expected: str) -> float:
    if expected == "pass":
        most = max(tolerance_use(r) for r in results)
        return 1 / most if most > 0 else math.inf
    return min(math.inf if r["mismatches"] else tolerance_use(r) for r in results)


def summarize(runs: Path) -> dict[str, object]:
    rows = [json.loads(line) for line in runs.read_text().splitlines() if line]
    for row in rows:
        row["verdict_then"], row["verdict"] = row["verdict"], verdict_now(row)
    by_path: dict[str, list[dict]] = {}
    for row in rows:
        by_path.setdefault(row["path"], []).append(row)
    summary: dict[str, object] = {"seeds": sorted({r["seed"] for r in rows}), "rule": eq.rule_record(), "paths": {}}
    for path, results in sorted(by_path.items()):
        ratios = [r["worst_ratio"] for r in results]
        expected = results[0]["expected"]
        summary["paths"][path] = {  # type: ignore[index]
            "expected": expected,
            "runs": len(results),
            "worst_ratio_when_run": [min(ratios), max(ratios)],
            "as_expected": sum(r["verdict"] == expected for r in results),  # under the current tolerances
            "as_expected_when_run": sum(r["verdict_then"] == expected for r in results),
            # legitimate: 1 / the most of its tolerance any run needed; planted: the least any run needed past it
            "margin": margin(results, expected),
            "worst_tensors": sorted({r["worst_tensor"] for r in results}),
            "kind_ratio_max": {k: max(r["kinds"].get(k, 0.0) for r in results) for k in eq.KINDS},
            # the tolerance each kind would need (tolerance-free): legitimate paths' maximum, planted bugs' minimum
            "needed_max": {k: max(r["needed"].get(k, 0.0) for r in results) for k in eq.KINDS},
            "needed_min": {k: min(r["needed"].get(k, 0.0) for r in results) for k in eq.KINDS},
        }
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--out", default="results/equivalence-margins")
    parser.add_argument("--data", default=str(SHARED_JPEG) if SHARED_JPEG.exists() else "synthetic")
    parser.add_argument("--no-compile", action="store_true", help="leave the compiled variants out")
    parser.add_argument("--only", default="", help="comma-separated path labels to run (default: all)")
    parser.add_argument("--summary", action="store_true", help="only rewrite summary.json from runs.jsonl")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = out / "runs.jsonl"
    if not args.summary:
        train_set, _ = load_datasets(DataConfig(source=args.data))
        cache = eq.ReferenceCache(train_set)
        finished = done(runs)
        only = set(filter(None, args.only.split(",")))
        for seed in range(args.seeds):
            base = RunConfig(device="cpu", epochs=1, seed=seed)
            for label, (config, plant, expected) in paths(base, not args.no_compile).items():
                if (seed, label) in finished or (only and label not in only):
                    continue
                started = time.perf_counter()
                config = replace(config, seed=seed)
                observe = (
                    eq.run_path if config.compile_mode else eq.observe_variant
                )  # compiled: caches kept across seeds
                record = eq.check_variant(config, cache, PLANTS[plant] if plant else None, observe_fn=observe)
                row = {
                    "seed": seed,
                    "path": label,
                    "expected": expected,
                    "verdict": record["verdict"],
                    "data": train_set.source,
                    "worst_ratio": record["worst"]["ratio"],
                    "worst_tensor": record["worst"]["tensor"],
                    "mismatches": record["mismatches"],
                    "kinds": {k: v["ratio"] for k, v in record["kinds"].items()},
                    "relative_errors": {k: v["relative_error"] for k, v in record["kinds"].items()},
                    "needed": {k: v["needed_tolerance"] for k, v in record["kinds"].items()},
                    "seconds": time.perf_counter() - started,
                    "torch": torch.__version__,
                }
                with runs.open("a") as handle:
                    handle.write(json.dumps(row) + "\n")
                print(
                    f"seed {seed} {label:40s} {record['verdict']:4s} (expected {expected}) worst {row['worst_tensor']} "
                    f"{row['worst_ratio']:.3g}x bound  {row['seconds']:.0f} s  needed "
                    + " ".join(f"{k} {v:.2g}" for k, v in row["needed"].items()),
                    flush=True,
                )
    summary = summarize(runs)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    wrong = {p: s for p, s in summary["paths"].items() if s["as_expected"] != s["runs"]}  # type: ignore[union-attr]
    for path, s in summary["paths"].items():  # type: ignore[union-attr]
        print(
            f"{path:40s} expected {s['expected']:4s} {s['as_expected']}/{s['runs']} "
            f"as expected, margin {s['margin']:.3g}"
        )
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
