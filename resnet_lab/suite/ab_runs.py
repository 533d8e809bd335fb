"""`resnet-lab ab`'s runs: base and working tree measured in alternation on this machine.

The base (a commit, default HEAD~1) is checked out into a temporary clone; the
other side is the repository's working tree as it is. Each run is one pytest
process in its side's checkout (its own `resnet_lab` and top-level conftest
first on the path; nothing is installed), running only the gated benchmarks
that both sides have, saved with `--benchmark-save` into one pytest-benchmark
storage (so `pytest-benchmark compare` reads the runs too). The runs follow
one another in ABBA order (base, new, new, base, ...), each with the whole
machine: two runs side by side share caches and memory bandwidth, so a side
that waits (a sleep, a lock, slower I/O) frees them for the other side, which
then speeds up and hides the wait (issue 23; results/ab-gate/ has the
measurements). --side-by-side keeps the old design for comparison. A time box
keeps the job inside CI's budget on a loaded machine: once the interval has its
minimum of pairs, no pair starts that would end past it. The decision is
results/ab.py's.

No torch here: this runs the suite in child processes and reads their JSON.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import procs
from ..errors import LabError
from ..results.ab import BASE, NEW, NO_GATED, Outcome, decide_runs, gated_benchmarks, paired_runs, run_name
from ..results.paired import GateRule, min_pairs
from .checkout import checkout_base, last_line, repository, resolve_commit, working_tree_label

TEMP_PREFIX = "resnet-lab-ab-"  # the base's clone: resnet-lab-ab-<pid>.XXXX in the temporary folder


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
    # The two runs of a pair at the same time, each on its own share of the cores, rather than one after the other.
    # Off: side by side, the runs contend for caches and memory bandwidth, so a change that waits speeds the other
    # side up and reads as a fraction of its size (results/ab-gate/, issue 23); one after the other it reads in full.
    side_by_side: bool = False
    threads: int | None = (
        None  # torch threads per run (OMP_NUM_THREADS); None: half the CPUs side by side, else torch's default
    )
    # No pair starts that would end past this (judged by the longest pair so far) once `boxed_pairs` are done:
    # on a loaded machine the gate then decides on fewer pairs instead of overrunning CI. None: no box.
    # 15 min: one after the other a pair takes twice the wall time it took side by side (about 2.3 min on the
    # 2-core CI machine, results/ab-gate/), so 6 pairs need about 14 min; .ci/run stays near 31 of its 45 min.
    time_box_s: float | None = 15 * 60
    # The fewest pairs the box leaves: with 5, the 90% interval is the range of the ratios, and one A/A
    # run in five flagged a figure (results/ab-gate/).
    boxed_pairs: int = 6
    python: str = sys.executable

    def run_threads(self) -> int | None:
        if self.threads is not None or not self.side_by_side:
            return self.threads
        return max(1, (os.cpu_count() or 2) // 2)

    def suite_options(self, side_out: Path) -> list[str]:
        return [
            "--lab-device",
            self.device,
            "--lab-epochs",
            str(self.epochs),
            "--lab-batches",
            str(self.batches),
            "--lab-out",
            str(side_out),
        ]


# ---------------------------------------------------------------------------
# running one side
# ---------------------------------------------------------------------------


def side_env(root: Path, threads: int | None = None) -> dict[str, str]:
    """The child's environment: the checkout first on the import path, ahead of any installed resnet_lab;
    `threads` caps torch's intra-op threads (OpenMP), so that two side-by-side runs do not share a core."""
    # An xdist worker's variables would make pytest-benchmark in the child disable every benchmark.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST_")}
    env["PYTHONPATH"] = os.pathsep.join([str(root), *(p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p)])
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def pytest_argv(config: AbConfig, *args: str) -> list[str]:
    return [config.python, "-m", "pytest", "-p", "no:cacheprovider", *args]


def collected_ids(config: AbConfig, root: Path, side_out: Path | None) -> tuple[set[str], str]:
    """Node ids of `root`'s benchmark suite under the gate's options (none when `side_out` is None),
    and why collection failed ('' if it did not)."""
    if not (root / "benchmarks").is_dir():
        return set(), ""  # nothing to collect: a base from before the suite (BaseLacksGated), not a failure
    options = config.suite_options(side_out) if side_out is not None else []
    result = procs.run(
        pytest_argv(config, "--collect-only", "-q", "benchmarks", *options),
        cwd=root,
        env=side_env(root),
        capture_output=True,
        text=True,
    )
    ids = {line.strip() for line in result.stdout.splitlines() if "::" in line and not line.startswith(" ")}
    if result.returncode not in (0, 5):  # 5: no tests collected, which is no failure
        return ids, f"pytest --collect-only exited {result.returncode}: {last_line(result.stdout + result.stderr)}"
    return ids, ""


def imported_from(config: AbConfig, root: Path) -> Path | None:
    """Where `import resnet_lab` resolves in `root`'s runs (found without importing it, so without torch)."""
    code = "import importlib.util as u; s = u.find_spec('resnet_lab'); print(s.origin if s and s.origin else '')"
    result = procs.run([config.python, "-c", code], cwd=root, env=side_env(root), capture_output=True, text=True)
    origin = result.stdout.strip()
    return Path(origin).resolve() if result.returncode == 0 and origin else None


def check_imports_own_code(config: AbConfig, side: str, root: Path) -> None:
    origin = imported_from(config, root)
    if origin is None or not origin.is_relative_to(root.resolve()):
        raise LabError(
            f"the {side} side's runs would import resnet_lab from {origin or 'nowhere'}, not from its checkout '{root}'"
        )


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


def start_side(
    config: AbConfig, side: str, root: Path, pair: int, order: int, ids: Sequence[str]
) -> tuple[subprocess.Popen, Path]:
    out = config.out.resolve()
    log = out / "logs" / f"{order:02d}-{run_name(side, pair)}.log"
    argv = pytest_argv(
        config,
        "-q",
        *ids,
        *config.suite_options(out / "lab-output" / side),
        "--benchmark-save",
        run_name(side, pair),
        "--benchmark-save-data",
        "--benchmark-storage",
        f"file://{out / 'storage'}",
    )
    with open(log, "w", encoding="utf-8") as handle:  # the child keeps its own copy of the descriptor
        return procs.popen(
            argv, cwd=root, env=side_env(root, config.run_threads()), stdout=handle, stderr=subprocess.STDOUT
        ), log


def run_together(config: AbConfig, sides: Sequence[tuple[str, Path, int, int]], ids: Sequence[str]) -> list[RunRecord]:
    """Start the runs `sides` = (side, root, pair, order) at once and wait for all; each run's wall time ends at its own
    exit."""
    before, start = loadavg(), time.perf_counter()
    started = [
        (side, pair, order, *start_side(config, side, root, pair, order, ids)) for side, root, pair, order in sides
    ]
    ended: dict[int, float] = {}
    while len(ended) < len(started):
        for i, (_, _, _, proc, _) in enumerate(started):
            if i not in ended and proc.poll() is not None:
                ended[i] = time.perf_counter() - start
        time.sleep(0.05)
    after, out = loadavg(), config.out.resolve()
    return [
        RunRecord(order, side, pair, proc.returncode, ended[i], before, after, str(log.relative_to(out)))
        for i, (side, pair, order, proc, log) in enumerate(started)
    ]


def run_order(pairs: int) -> list[tuple[int, str]]:
    """ABBA blocks: (0, base), (0, new), (1, new), (1, base), (2, base), ...; side by side, the first one starts
    first."""
    order = []
    for pair in range(pairs):
        sides = (BASE, NEW) if pair % 2 == 0 else (NEW, BASE)
        order += [(pair, side) for side in sides]
    return order


# ---------------------------------------------------------------------------
# the whole job
# ---------------------------------------------------------------------------


class BaseLacksGated(LabError):
    """The base's suite was collected and holds none of the gated benchmarks: the gate's one reason to skip.

    Decided from the collected test ids (structured facts), never from a message's text; `ids` are the ones wanted.
    """

    def __init__(self, message: str, ids: Sequence[str]) -> None:
        super().__init__(message)
        self.ids = list(ids)


def prepare_out(out: Path) -> list[Path]:
    """Create the run folders; returns those it created, for `discard_out` to remove if no run starts."""
    if out.exists() and not out.is_dir():
        raise LabError(f"--out '{out}' exists and is not a folder; pass a folder for the runs")
    if (out / "storage").exists():
        raise LabError(
            f"'{out}' already holds paired runs; pass another --out, or --from {out} to decide on them again"
        )
    created = [p for p in (out, *(out / f for f in ("storage", "logs", "lab-output"))) if not p.exists()]
    try:
        for folder in ("storage", "logs", "lab-output"):
            (out / folder).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        discard_out(created)
        raise LabError(f"--out '{out}': cannot create its folders ({exc.strerror or exc})") from None
    return created


def discard_out(created: Sequence[Path]) -> None:
    """Remove what `prepare_out` created, deepest first (a failed check must not block the next run)."""
    for path in reversed(created):
        shutil.rmtree(path, ignore_errors=True)


def sides_ids(config: AbConfig, base_root: Path, new_root: Path, base_label: str) -> list[str]:
    """The gated node ids both sides collect; the base lacking all of them is a usage error that CI can recognize."""
    wanted = [g.test_id for g in gated_benchmarks(config.device)]
    with ThreadPoolExecutor(max_workers=2) as pool:  # two pytest processes at once: each spends seconds importing torch
        base_job = pool.submit(collected_ids, config, base_root, config.out.resolve() / "lab-output" / BASE)
        new_job = pool.submit(collected_ids, config, new_root, config.out.resolve() / "lab-output" / NEW)
        (base_ids, base_problem), (new_ids, new_problem) = base_job.result(), new_job.result()
    why = ""
    if base_problem and not base_ids:
        # Collected again without the gate's options: a base whose suite predates them lists its tests then, and
        # lacking the gated ones is a fact about those ids; a base that fails even so is broken, not skipped.
        bare_ids, bare_problem = collected_ids(config, base_root, None)
        if bare_problem or any(i in bare_ids for i in wanted):
            raise LabError(f"the base {base_label}'s benchmarks could not be collected: {base_problem}")
        why = f"; its suite does not take the gate's options ({base_problem})"
    common = [i for i in wanted if i in base_ids]
    if not common:
        raise BaseLacksGated(f"the base {base_label} {NO_GATED} ({', '.join(wanted)}){why}", wanted)
    both = [i for i in common if i in new_ids]
    if not both:
        raise LabError(
            "the working tree has none of the gated benchmarks the base has "
            f"({', '.join(common)}): {new_problem or 'not collected'}"
        )
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
            assert config.time_box_s is not None  # only a time box stops the pairs early
            print(
                f"time box: {pair} pairs done in {(time.perf_counter() - start) / 60:.1f} min; another would end past "
                f"{config.time_box_s / 60:g} min, so the gate decides on {pair}",
                flush=True,
            )
            break
        began = time.perf_counter()
        runs = order[2 * pair : 2 * pair + 2]
        for batch in [runs] if config.side_by_side else [[run] for run in runs]:
            for record in run_together(config, batch, ids):
                records.append(record)
                load = (
                    f"load {record.load_before[0]:.2f} -> {record.load_after[0]:.2f}"
                    if record.load_before and record.load_after
                    else "load n/a"
                )
                print(
                    f"[{record.order + 1:2d}/{len(order)}] pair {record.pair} "
                    f"{record.side:4s} {record.wall_s:6.1f} s  ({load})",
                    flush=True,
                )
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
    created = prepare_out(config.out)
    procs.remove_stale(tempfile.gettempdir(), TEMP_PREFIX)  # clones of runs that were SIGKILLed
    temp = Path(tempfile.mkdtemp(prefix=procs.temporary_name(TEMP_PREFIX), suffix=procs.TEMP_SUFFIX))
    try:
        try:
            roots = {BASE: checkout_base(repo, commit, temp), NEW: repo}
            ids = sides_ids(config, roots[BASE], roots[NEW], labels[BASE])
            for side in (BASE, NEW):
                check_imports_own_code(config, side, roots[side])
        except BaseException:
            discard_out(created)  # no run started: leave --out as it was
            raise
        mode = (
            f"side by side, {config.run_threads()} torch threads each" if config.side_by_side else "one after the other"
        )
        print(
            f"paired runs: base {labels[BASE]} vs new {labels[NEW]}; {config.pairs} pairs (ABBA, {mode}), "
            f"C2 {config.epochs} epochs x {config.batches} batches; {len(ids)} "
            f"benchmarks: {', '.join(i.rpartition('::')[2] for i in ids)}",
            flush=True,
        )
        start = time.perf_counter()
        records = run_pairs(config, roots, ids)
        elapsed = time.perf_counter() - start
    finally:
        procs.stop_children()  # interrupted mid-pair: no run outlives this, nor keeps using the clone
        shutil.rmtree(temp, ignore_errors=True)
    session = Session(labels, records, elapsed)
    failed = [r for r in records if r.returncode != 0]
    if failed and failed[0].side == BASE:
        raise LabError(
            f"the base's run {run_name(BASE, failed[0].pair)} failed (pytest exit "
            f"{failed[0].returncode}); see {config.out / failed[0].log}"
        )
    if failed:
        why = (
            f"the new side's run {run_name(NEW, failed[0].pair)} failed (pytest "
            f"exit {failed[0].returncode}); see {config.out / failed[0].log}"
        )
        return Outcome(why, [], [], run_failure=why), session
    pairs = len({r.pair for r in records})
    heading = (
        f"paired A/B: base {labels[BASE]} vs new {labels[NEW]}, {pairs} of {config.pairs} pairs "
        f"({len(records)} runs) in {elapsed / 60:.1f} min"
    )
    outcome = decide_runs(paired_runs(config.out), gated_benchmarks(config.device), config.rule, heading)
    return outcome, session


def summary_record(config: AbConfig, outcome: Outcome, session: Session) -> dict[str, object]:
    return {
        "base": session.labels[BASE],
        "new": session.labels[NEW],
        "elapsed_s": session.elapsed_s,
        "config": {
            "pairs": config.pairs,
            "epochs": config.epochs,
            "batches": config.batches,
            "device": config.device,
            "tolerance": config.rule.tolerance,
            "confidence": config.rule.confidence,
            "order": "ABBA",
            "side_by_side": config.side_by_side,
            "threads": config.run_threads(),
            "time_box_s": config.time_box_s,
        },
        "runs": [asdict(r) for r in session.records],
        "rows": [r.as_record() for r in outcome.rows],
        "listed": outcome.listed,
        "warnings": outcome.warnings,
        "failed": outcome.failed,
    }
