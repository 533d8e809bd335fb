"""`resnet-lab ab [--base REF]`: the regression gate, base and working tree measured in alternation here.

The base (a commit, default HEAD~1) is checked out into a temporary clone; the
other side is the repository's working tree as it is. Each run is one pytest
process in its side's checkout (its own `resnet_lab` and top-level conftest
first on the path; nothing is installed), running only the gated benchmarks
that both sides have, saved with `--benchmark-save` into one pytest-benchmark
storage (so `pytest-benchmark compare` reads the runs too). The two runs of a
pair run side by side (each with half the CPUs' worth of torch threads), so
that load from elsewhere hits both at once; which side starts first alternates
in ABBA blocks (or, with --no-side-by-side, the runs follow one another in ABBA
order). A time box keeps the job inside CI's budget on a loaded machine: once the
interval has its minimum of pairs, no pair starts that would end past it. The
decision per gated figure is on the pairs' ratios (resnet_lab.paired).

No torch here: this runs the suite in child processes and reads their JSON.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .argtypes import positive_int
from .benchjson import Bench, Run, load_run
from .compare import format_table, version_difference
from .errors import LabError
from .fileio import write_json
from .paired import FASTER, SLOWER, GateRule, PairedEstimate, min_pairs, paired_estimate

BASE, NEW = "base", "new"
# Found by `resnet-lab ab` in its own output: CI skips the gate, with this reason, when a base predates the benchmarks.
NO_GATED = "has none of the gated benchmarks"
RUN_NAME = re.compile(r"^\d+_ab-(base|new)-(\d+)\.json$")


@dataclass(frozen=True)
class Gated:
    """One gated figure: a benchmark by its pytest node id (relative to a checkout) and what is read from it."""

    test_id: str
    figure: str  # "train_s": median over the steady (non-warm-up) epochs; "round_s": median of the benchmark's rounds

    @property
    def name(self) -> str:
        return self.test_id.rpartition("::")[2]


def gated_benchmarks(device: str) -> tuple[Gated, ...]:
    """The cheapest benchmarks that still represent training and loading: C2's training step, and one epoch of
    the lab's PIL loader in the main process (no worker start-up, which on 2 cores is mostly scheduling)."""
    return (
        Gated(f"benchmarks/test_c2_phases.py::test_c2_phases[device={device}]", "train_s"),
        Gated("benchmarks/test_loader.py::test_loader_throughput[pipeline=dataloader-workers=0-device=cpu]", "round_s"),
    )


@dataclass(frozen=True)
class AbConfig:
    """One paired comparison. Defaults are CI's (see README, "Regression gate")."""

    base_ref: str = "HEAD~1"
    pairs: int = 8
    epochs: int = 3  # C2 epochs per run; the first is warm-up and not gated
    batches: int = 1  # C2 batches per epoch
    device: str = "cpu"
    out: Path = Path("out/ab")
    rule: GateRule = GateRule()
    # The two runs of a pair at the same time, each on its own share of the cores, rather than one after the other:
    # load that comes and goes then hits both runs of a pair at once (results/ab-gate/ has both measured).
    side_by_side: bool = True
    threads: int | None = None  # torch threads per run (OMP_NUM_THREADS); None: half the CPUs side by side, else torch's default
    # No pair starts that would end past this (judged by the longest pair so far) once `boxed_pairs` are done:
    # on a loaded machine the gate then decides on fewer pairs instead of overrunning CI. None: no box.
    time_box_s: float | None = 9 * 60
    # The fewest pairs the box leaves: with 5, the 90% interval is the range of the ratios, and one A/A
    # run in five flagged a figure (results/ab-gate/).
    boxed_pairs: int = 6
    python: str = sys.executable

    def run_threads(self) -> int | None:
        if self.threads is not None or not self.side_by_side:
            return self.threads
        return max(1, (os.cpu_count() or 2) // 2)

    def suite_options(self, side_out: Path) -> list[str]:
        return ["--lab-device", self.device, "--lab-epochs", str(self.epochs), "--lab-batches", str(self.batches), "--lab-out", str(side_out)]


# ---------------------------------------------------------------------------
# git and checkouts
# ---------------------------------------------------------------------------


def git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)


def repository(cwd: Path) -> Path:
    result = git(cwd, "rev-parse", "--show-toplevel")
    if result.returncode != 0:
        raise LabError(f"'{cwd}' is not inside a git repository; run resnet-lab ab in the repository to check")
    return Path(result.stdout.strip())


def resolve_commit(repo: Path, ref: str) -> str:
    result = git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    if result.returncode != 0 or not result.stdout.strip():
        raise LabError(f"--base '{ref}' is not a commit of the repository '{repo}'")
    return result.stdout.strip()


def working_tree_label(repo: Path) -> str:
    head = git(repo, "rev-parse", "--short", "HEAD").stdout.strip() or "no commit"
    dirty = bool(git(repo, "status", "--porcelain", "--untracked-files=no").stdout.strip())
    return f"working tree of {head}{' + uncommitted changes' if dirty else ''}"


def checkout_base(repo: Path, commit: str, into: Path) -> Path:
    """A throwaway clone at `commit`; --shared reads the repository's objects in place, so it is fast and copies nothing."""
    target = into / "base"
    for args in (("clone", "--quiet", "--shared", "--no-checkout", str(repo), str(target)), ("-C", str(target), "checkout", "--quiet", "--detach", commit)):
        result = subprocess.run(["git", *args], capture_output=True, text=True)
        if result.returncode != 0:
            raise LabError(f"cannot check out the base {commit[:12]}: {last_line(result.stderr)}")
    return target


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


# ---------------------------------------------------------------------------
# running one side
# ---------------------------------------------------------------------------


def side_env(root: Path, threads: int | None = None) -> dict[str, str]:
    """The child's environment: the checkout first on the import path, ahead of any installed resnet_lab;
    `threads` caps torch's intra-op threads (OpenMP), so that two side-by-side runs do not share a core."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root), *(p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p)])
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def pytest_argv(config: AbConfig, *args: str) -> list[str]:
    return [config.python, "-m", "pytest", "-p", "no:cacheprovider", *args]


def collected_ids(config: AbConfig, root: Path, side_out: Path) -> tuple[set[str], str]:
    """Node ids of `root`'s benchmark suite under the gate's options, and why collection failed ('' if it did not)."""
    if not (root / "benchmarks").is_dir():
        return set(), "it has no benchmarks/ folder"
    result = subprocess.run(
        pytest_argv(config, "--collect-only", "-q", "benchmarks", *config.suite_options(side_out)),
        cwd=root, env=side_env(root), capture_output=True, text=True,
    )
    ids = {line.strip() for line in result.stdout.splitlines() if "::" in line and not line.startswith(" ")}
    if result.returncode != 0:
        return ids, f"pytest --collect-only exited {result.returncode}: {last_line(result.stdout + result.stderr)}"
    return ids, ""


def imported_from(config: AbConfig, root: Path) -> Path | None:
    """Where `import resnet_lab` resolves in `root`'s runs (found without importing it, so without torch)."""
    code = "import importlib.util as u; s = u.find_spec('resnet_lab'); print(s.origin if s and s.origin else '')"
    result = subprocess.run([config.python, "-c", code], cwd=root, env=side_env(root), capture_output=True, text=True)
    origin = result.stdout.strip()
    return Path(origin).resolve() if result.returncode == 0 and origin else None


def check_imports_own_code(config: AbConfig, side: str, root: Path) -> None:
    origin = imported_from(config, root)
    if origin is None or not origin.is_relative_to(root.resolve()):
        raise LabError(f"the {side} side's runs would import resnet_lab from {origin or 'nowhere'}, not from its checkout '{root}'")


def loadavg() -> list[float] | None:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class RunRecord:
    order: int
    side: str
    pair: int
    returncode: int
    wall_s: float
    load_before: list[float] | None
    load_after: list[float] | None
    log: str


def run_name(side: str, pair: int) -> str:
    return f"ab-{side}-{pair:02d}"


def start_side(config: AbConfig, side: str, root: Path, pair: int, order: int, ids: Sequence[str]) -> tuple[subprocess.Popen, Path]:
    out = config.out.resolve()
    log = out / "logs" / f"{order:02d}-{run_name(side, pair)}.log"
    argv = pytest_argv(
        config, "-q", *ids, *config.suite_options(out / "lab-output" / side),
        "--benchmark-save", run_name(side, pair), "--benchmark-save-data", "--benchmark-storage", f"file://{out / 'storage'}",
    )
    with open(log, "w", encoding="utf-8") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(argv, cwd=root, env=side_env(root, config.run_threads()), stdout=handle, stderr=subprocess.STDOUT), log


def run_together(config: AbConfig, sides: Sequence[tuple[str, Path, int, int]], ids: Sequence[str]) -> list[RunRecord]:
    """Start the runs `sides` = (side, root, pair, order) at once and wait for all; each run's wall time ends at its own exit."""
    before, start = loadavg(), time.perf_counter()
    started = [(side, pair, order, *start_side(config, side, root, pair, order, ids)) for side, root, pair, order in sides]
    ended: dict[int, float] = {}
    while len(ended) < len(started):
        for i, (_, _, _, proc, _) in enumerate(started):
            if i not in ended and proc.poll() is not None:
                ended[i] = time.perf_counter() - start
        time.sleep(0.05)
    after, out = loadavg(), config.out.resolve()
    return [RunRecord(order, side, pair, proc.returncode, ended[i], before, after, str(log.relative_to(out)))
            for i, (side, pair, order, proc, log) in enumerate(started)]


def run_order(pairs: int) -> list[tuple[int, str]]:
    """ABBA blocks: (0, base), (0, new), (1, new), (1, base), (2, base), ...; side by side, the first one starts first."""
    order = []
    for pair in range(pairs):
        sides = (BASE, NEW) if pair % 2 == 0 else (NEW, BASE)
        order += [(pair, side) for side in sides]
    return order


# ---------------------------------------------------------------------------
# reading the runs and deciding
# ---------------------------------------------------------------------------


def saved_runs(out: Path) -> dict[tuple[str, int], Path]:
    """(side, pair) -> the saved pytest-benchmark run in `out`/storage."""
    found: dict[tuple[str, int], Path] = {}
    for path in sorted((out / "storage").glob("*/*.json")):
        match = RUN_NAME.match(path.name)
        if match:
            found[(match.group(1), int(match.group(2)))] = path
    return found


def paired_runs(out: Path) -> list[tuple[Run, Run]]:
    """(base run, new run) per pair, in pair order; a pair short of a side is an error that names it."""
    found = saved_runs(out)
    pairs = sorted({pair for _, pair in found})
    if not pairs:
        raise LabError(f"no paired runs in '{out}' (looked for {out / 'storage'}/*/NNNN_ab-base-NN.json and ab-new-NN.json)")
    missing = [f"{run_name(side, pair)}" for pair in range(max(pairs) + 1) for side in (BASE, NEW) if (side, pair) not in found]
    if missing:
        raise LabError(f"'{out}' is missing the runs {', '.join(missing)}: every pair needs a base and a new run")
    return [(load_run(found[(BASE, p)]), load_run(found[(NEW, p)])) for p in pairs]


def figure(bench: Bench, name: str) -> float | str:
    """The gated figure of one run's benchmark, or why there is none ('not recorded', 'non-finite (nan)')."""
    if name == "round_s":
        raw = bench.stats.get("data") or [bench.stats[key] for key in ("median",) if key in bench.stats]
    else:
        records = bench.epochs()
        steady = [r for r in records if r.get("warmup") is False] or records[1:] or records
        raw = [r[name] for r in steady if name in r]
    if not raw:
        return "not recorded"
    for v in raw:
        if isinstance(v, float) and not math.isfinite(v):
            return f"non-finite ({v})"
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            return f"not a positive number ({v!r})"
    return float(statistics.median(raw))


@dataclass(frozen=True)
class Row:
    gated: Gated
    label: str
    base: list[float]
    new: list[float]
    estimate: PairedEstimate | None
    problem: str = ""  # why the figure cannot be decided; a problem on the new side fails the gate
    fails: bool = False

    def as_record(self) -> dict[str, object]:
        return {"benchmark": self.gated.test_id, "figure": self.gated.figure, "base": self.base, "new": self.new,
                "estimate": asdict(self.estimate) if self.estimate else None, "problem": self.problem, "fails": self.fails}


def bench_by_name(run: Run, name: str) -> Bench | None:
    return next((b for b in run.benchmarks if b.name == name), None)


def decide(gated: Gated, runs: Sequence[tuple[Run, Run]], rule: GateRule) -> Row:
    base_values, new_values, label = [], [], gated.name
    for pair, (base_run, new_run) in enumerate(runs):
        base_bench, new_bench = bench_by_name(base_run, gated.name), bench_by_name(new_run, gated.name)
        if base_bench is None or new_bench is None:
            side = NEW if base_bench is not None else BASE
            return Row(gated, label, [], [], None, f"benchmark missing from the {side} run of pair {pair}", fails=side == NEW)
        label = f"{new_bench.group} {gated.name}" if new_bench.group else gated.name
        old, new = figure(base_bench, gated.figure), figure(new_bench, gated.figure)
        if isinstance(old, str):
            return Row(gated, label, [], [], None, f"{old} in the base run of pair {pair}: not gated")
        if isinstance(new, str):
            return Row(gated, label, [], [], None, f"{gated.figure} {new} in the new run of pair {pair}", fails=True)
        base_values.append(old)
        new_values.append(new)
    estimate = paired_estimate(base_values, new_values, rule)
    return Row(gated, label, base_values, new_values, estimate, fails=estimate.verdict == SLOWER)


def common_benchmarks(runs: Sequence[tuple[Run, Run]]) -> tuple[list[str], list[str]]:
    """Benchmarks in the base runs only, and in the new runs only."""
    base = {b.name for pair in runs for b in pair[0].benchmarks}
    new = {b.name for pair in runs for b in pair[1].benchmarks}
    return sorted(base - new), sorted(new - base)


# ---------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------


def verdict_text(row: Row, rule: GateRule) -> str:
    if row.estimate is None:
        return f"FAIL: {row.problem}" if row.fails else row.problem
    if row.estimate.verdict == SLOWER:
        return f"FAIL: slower by more than {rule.tolerance:.0%}"
    if row.estimate.verdict == FASTER:
        return "faster (passes)"
    if row.estimate.high > 1 + 2 * rule.tolerance:
        return f"same, but noisy: a {2 * rule.tolerance:.0%} slowdown could have passed unseen"
    return "same (within noise or tolerance)"


def table(rows: Sequence[Row], rule: GateRule) -> str:
    header = ["benchmark", "figure", "pairs", "base median", "new median", "ratio", f"{rule.confidence:.0%} interval", "verdict"]
    lines = []
    for row in rows:
        e = row.estimate
        cells = [row.label, row.gated.figure, str(len(row.base))]
        if e is None:
            cells += ["", "", "", ""]
        else:
            cells += [f"{statistics.median(row.base):.4g} s", f"{statistics.median(row.new):.4g} s", f"{e.ratio:.3f}x", f"[{e.low:.3f}, {e.high:.3f}]"]
        lines.append([*cells, verdict_text(row, rule)])
    return format_table(header, lines)


@dataclass(frozen=True)
class Outcome:
    text: str
    warnings: list[str]
    rows: list[Row]
    listed: list[str] = field(default_factory=list)
    run_failure: str = ""  # a new-side run that did not finish: the gate fails without deciding

    @property
    def failed(self) -> list[str]:
        """What fails the gate, one phrase each."""
        return [self.run_failure] * bool(self.run_failure) + [f"{r.label} {r.gated.figure}" for r in self.rows if r.fails]


def decide_runs(runs: Sequence[tuple[Run, Run]], gated: Sequence[Gated], rule: GateRule, heading: str = "") -> Outcome:
    if len(runs) < min_pairs(rule.confidence):
        raise LabError(f"{len(runs)} pairs cannot give a {rule.confidence:.0%} interval; at least {min_pairs(rule.confidence)} are needed")
    warnings = []
    versions = version_difference(runs[0][0], runs[0][1])
    if versions:
        warnings.append(f"the sides ran different library versions ({versions}); the ratios include that difference")
    base_names = {b.name for pair in runs for b in pair[0].benchmarks}
    new_names = {b.name for pair in runs for b in pair[1].benchmarks}
    present = [g for g in gated if g.name in base_names and g.name in new_names]
    if not present:
        raise LabError(f"the runs have no gated benchmark in common ({', '.join(g.name for g in gated)})")
    rows = [decide(g, runs, rule) for g in present]
    only_base, only_new = common_benchmarks(runs)
    out = [heading] if heading else []
    out.append(table(rows, rule))
    listed = [f"only in the base runs ({len(only_base)}): {', '.join(only_base)}"] * bool(only_base)
    listed += [f"only in the new runs ({len(only_new)}): {', '.join(only_new)}"] * bool(only_new)
    out += listed
    out.append(f"rule: fails when the {rule.confidence:.0%} interval of new/base lies above 1 and the ratio (Hodges-Lehmann "
               f"over {len(runs)} pairs) exceeds 1 + {rule.tolerance:g}")
    return Outcome("\n".join(out), warnings, rows, listed)


# ---------------------------------------------------------------------------
# the whole job
# ---------------------------------------------------------------------------


def prepare_out(out: Path) -> None:
    if (out / "storage").exists():
        raise LabError(f"'{out}' already holds paired runs; pass another --out, or --from {out} to decide on them again")
    for folder in ("storage", "logs", "lab-output"):
        (out / folder).mkdir(parents=True, exist_ok=True)


def sides_ids(config: AbConfig, base_root: Path, new_root: Path, base_label: str) -> list[str]:
    """The gated node ids both sides collect; the base lacking all of them is a usage error that CI can recognize."""
    wanted = [g.test_id for g in gated_benchmarks(config.device)]
    with ThreadPoolExecutor(max_workers=2) as pool:  # two pytest processes at once: each spends seconds importing torch
        base_job = pool.submit(collected_ids, config, base_root, config.out.resolve() / "lab-output" / BASE)
        new_job = pool.submit(collected_ids, config, new_root, config.out.resolve() / "lab-output" / NEW)
        (base_ids, base_problem), (new_ids, new_problem) = base_job.result(), new_job.result()
    common = [i for i in wanted if i in base_ids]
    if not common:
        why = f": {base_problem}" if base_problem else ""
        raise LabError(f"the base {base_label} {NO_GATED} ({', '.join(wanted)}){why}")
    both = [i for i in common if i in new_ids]
    if not both:
        raise LabError(f"the working tree has none of the gated benchmarks the base has ({', '.join(common)}): {new_problem or 'not collected'}")
    return both


def next_pair_fits(config: AbConfig, done: int, elapsed_s: float, longest_pair_s: float) -> bool:
    """Whether another pair may start: always until `boxed_pairs` are done, then only while the longest
    pair so far would still end inside the time box."""
    if config.time_box_s is None or done < max(config.boxed_pairs, min_pairs(config.rule.confidence)):
        return True
    return elapsed_s + longest_pair_s <= config.time_box_s


def run_pairs(config: AbConfig, roots: dict[str, Path], ids: Sequence[str]) -> list[RunRecord]:
    records: list[RunRecord] = []
    order = [(side, roots[side], pair, number) for number, (pair, side) in enumerate(run_order(config.pairs))]
    start, longest = time.perf_counter(), 0.0
    for pair in range(config.pairs):
        if not next_pair_fits(config, pair, time.perf_counter() - start, longest):
            print(f"time box: {pair} pairs done in {(time.perf_counter() - start) / 60:.1f} min; another would end past "
                  f"{config.time_box_s / 60:g} min, so the gate decides on {pair}", flush=True)
            break
        began = time.perf_counter()
        runs = order[2 * pair:2 * pair + 2]
        for batch in ([runs] if config.side_by_side else [[run] for run in runs]):
            for record in run_together(config, batch, ids):
                records.append(record)
                load = f"load {record.load_before[0]:.2f} -> {record.load_after[0]:.2f}" if record.load_before and record.load_after else "load n/a"
                print(f"[{record.order + 1:2d}/{len(order)}] pair {record.pair} {record.side:4s} {record.wall_s:6.1f} s  ({load})", flush=True)
        longest = max(longest, time.perf_counter() - began)
        if any(r.returncode != 0 for r in records):
            break
    return records


@dataclass(frozen=True)
class Session:
    """What one `ab` job ran: the sides' labels, every run, and the wall time of all runs together."""

    labels: dict[str, str]
    records: list[RunRecord]
    elapsed_s: float


def run_ab(config: AbConfig) -> tuple[Outcome, Session]:
    repo = repository(Path.cwd())
    commit = resolve_commit(repo, config.base_ref)
    labels = {BASE: f"{commit[:12]} ({config.base_ref})", NEW: working_tree_label(repo)}
    prepare_out(config.out)
    temp = Path(tempfile.mkdtemp(prefix="resnet-lab-ab-"))
    try:
        roots = {BASE: checkout_base(repo, commit, temp), NEW: repo}
        ids = sides_ids(config, roots[BASE], roots[NEW], labels[BASE])
        for side in (BASE, NEW):
            check_imports_own_code(config, side, roots[side])
        mode = f"side by side, {config.run_threads()} torch threads each" if config.side_by_side else "one after the other"
        print(f"paired runs: base {labels[BASE]} vs new {labels[NEW]}; {config.pairs} pairs (ABBA, {mode}), "
              f"C2 {config.epochs} epochs x {config.batches} batches; {len(ids)} benchmarks: {', '.join(i.rpartition('::')[2] for i in ids)}", flush=True)
        start = time.perf_counter()
        records = run_pairs(config, roots, ids)
        elapsed = time.perf_counter() - start
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    session = Session(labels, records, elapsed)
    failed = [r for r in records if r.returncode != 0]
    if failed and failed[0].side == BASE:
        raise LabError(f"the base's run {run_name(BASE, failed[0].pair)} failed (pytest exit {failed[0].returncode}); see {config.out / failed[0].log}")
    if failed:
        why = f"the new side's run {run_name(NEW, failed[0].pair)} failed (pytest exit {failed[0].returncode}); see {config.out / failed[0].log}"
        return Outcome(why, [], [], run_failure=why), session
    pairs = len({r.pair for r in records})
    heading = (f"paired A/B: base {labels[BASE]} vs new {labels[NEW]}, {pairs} of {config.pairs} pairs "
               f"({len(records)} runs) in {elapsed / 60:.1f} min")
    outcome = decide_runs(paired_runs(config.out), gated_benchmarks(config.device), config.rule, heading)
    return outcome, session


def summary_record(config: AbConfig, outcome: Outcome, session: Session) -> dict[str, object]:
    return {
        "base": session.labels[BASE], "new": session.labels[NEW], "elapsed_s": session.elapsed_s,
        "config": {"pairs": config.pairs, "epochs": config.epochs, "batches": config.batches, "device": config.device,
                   "tolerance": config.rule.tolerance, "confidence": config.rule.confidence, "order": "ABBA",
                   "side_by_side": config.side_by_side, "threads": config.run_threads(), "time_box_s": config.time_box_s},
        "runs": [asdict(r) for r in session.records],
        "rows": [r.as_record() for r in outcome.rows],
        "listed": outcome.listed, "warnings": outcome.warnings,
        "failed": outcome.failed,
    }


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be a number between 0 and 1, got {text}")
    return value


def _non_negative_minutes(text: str) -> float | None:
    """--time-box MINUTES -> seconds, None for 0 (no box)."""
    try:
        minutes = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of minutes") from None
    if not minutes >= 0:
        raise argparse.ArgumentTypeError(f"must be a number of minutes >= 0, got {text}")
    return minutes * 60 or None


def configure(parser: argparse.ArgumentParser) -> None:
    defaults = AbConfig()
    parser.add_argument("--base", default=defaults.base_ref, metavar="REF", help=f"the commit to compare against. Default: {defaults.base_ref}")
    parser.add_argument("--pairs", type=positive_int, default=defaults.pairs, metavar="N",
                        help=f"base/new run pairs, in ABBA order (at least {min_pairs(defaults.rule.confidence)}). Default: {defaults.pairs}")
    parser.add_argument("--epochs", type=positive_int, default=defaults.epochs, metavar="N",
                        help=f"C2 epochs per run; the first is warm-up, not gated. Default: {defaults.epochs}")
    parser.add_argument("--batches", type=positive_int, default=defaults.batches, metavar="N", help=f"C2 batches per epoch. Default: {defaults.batches}")
    parser.add_argument("--device", default=defaults.device, metavar="DEV", help=f"the training device of the gated C2 run. Default: {defaults.device}")
    parser.add_argument("--side-by-side", action=argparse.BooleanOptionalAction, default=defaults.side_by_side,
                        help=f"run the two runs of a pair at the same time (one per core) instead of one after the other. Default: {defaults.side_by_side}")
    parser.add_argument("--threads", type=positive_int, default=defaults.threads, metavar="N",
                        help="torch threads per run (OMP_NUM_THREADS). Default: half the CPUs side by side, else torch's default")
    parser.add_argument("--time-box", type=_non_negative_minutes, default=defaults.time_box_s, metavar="MINUTES",
                        help=f"start no pair that would end past this many minutes once {defaults.boxed_pairs} pairs are done; "
                        f"0 = no box. Default: {(defaults.time_box_s or 0) / 60:g}")
    parser.add_argument("--tolerance", type=_fraction, default=defaults.rule.tolerance, metavar="F",
                        help=f"a slowdown must exceed this fraction (and the interval must exclude 1) to fail. Default: {defaults.rule.tolerance:g}")
    parser.add_argument("--confidence", type=_fraction, default=defaults.rule.confidence, metavar="F",
                        help=f"two-sided confidence of the paired interval. Default: {defaults.rule.confidence:g}")
    parser.add_argument("--out", type=Path, default=defaults.out, metavar="DIR",
                        help=f"where the runs (pytest-benchmark storage), logs and ab.json go; must not hold earlier runs. Default: {defaults.out}")
    parser.add_argument("--from", dest="from_dir", type=Path, default=None, metavar="DIR",
                        help="decide again on the runs an earlier `resnet-lab ab --out DIR` saved, without running anything")


def main(args: argparse.Namespace) -> int:
    rule = GateRule(tolerance=args.tolerance, confidence=args.confidence)
    if args.pairs < min_pairs(rule.confidence):
        raise LabError(f"--pairs {args.pairs} cannot give a {rule.confidence:.0%} interval; pass at least {min_pairs(rule.confidence)}")
    config = AbConfig(base_ref=args.base, pairs=args.pairs, epochs=args.epochs, batches=args.batches, device=args.device,
                      out=args.out, rule=rule, side_by_side=args.side_by_side, threads=args.threads, time_box_s=args.time_box)
    if args.from_dir is not None:
        outcome = decide_runs(paired_runs(args.from_dir), gated_benchmarks(config.device), rule, f"paired A/B from the runs in {args.from_dir}")
    else:
        outcome, session = run_ab(config)
        write_json(config.out / "ab.json", summary_record(config, outcome, session))
    for warning in outcome.warnings:
        print(f"resnet-lab ab: warning: {warning}", file=sys.stderr)
    print(outcome.text)
    if outcome.failed:
        print(f"\nresult: FAIL ({'; '.join(outcome.failed)})")
        return 1
    print(f"\nresult: ok ({sum(r.estimate is not None for r in outcome.rows)} figures gated)")
    return 0
