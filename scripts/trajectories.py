"""Training trajectories of C8's CPU-runnable paths against eager, from the same seeds (issue 19, item 4).

    python scripts/trajectories.py [--data ../shared/datasets/cifar10-jpeg.tar.gz]
                                   [--log results/cpu-trajectories/runs.jsonl]
                                   [--steps 200] [--batch 32] [--budget-min 60] [--only CONFIG ...]
    python scripts/trajectories.py --summarize [--log ...] [--steps N --batch B]   # tables from the log, trains nothing

Everything in C8's `best` and `cuda-graph` except the CUDA graph runs on a CPU: the device-resident
loader, the unsynced loop, channels_last, bf16 autocast, torch.compile. Each configuration below is
trained through the suite's own path (`LabRun` -> `train_one_epoch`, the variant's `RunConfig`) for
`--steps` batches from seed s: the same initial weights (set_seed(s)) and, for the PIL loader, the
same shuffle and augmentation stream (LoaderConfig.seed = s); the device loader draws its own stream
from the same seed. Per step the batch loss and top-1 are recorded; after the run the weights are
evaluated on `--eval-batches` test batches by the eager fp32 model (the same path for every
configuration, so the figure is of the weights, not of the variant's forward).

Resumable: every finished run is one JSON line appended to the log (flushed and fsynced); a rerun
skips the (config, seed, steps, batch) runs the log already holds, so the measurement can span
sessions. `--budget-min` stops starting new runs after that many minutes. Runs go in `ORDER`:
the cheap fp32 comparisons at seed 0, then their further seeds, then the bf16 ones.

What is judged (`--summarize`):
  * paired, per seed: the variant's per-step loss minus eager's at the same step and seed, averaged
    over the last half of the steps (d_s); the mean of d_s over seeds with a t interval, set beside
    the spread of the same figure between eager runs of different seeds (the seed-to-seed noise);
  * the loss difference at steps 1, 2, 3: the same weights and, for the PIL-loader configurations, the
    same batches, so a change of numerics shows as ~1e-6 relative at step 1 and grows slowly, a
    change of semantics (BN mode, loss scale, labels, a skipped weight decay) as far more at once;
  * the first step at which the two losses differ by more than 1e-3 (where chaos takes over).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch

from resnet_lab.data import DataConfig, LoaderConfig, load_datasets
from resnet_lab.engine import loop
from resnet_lab.engine.loop import evaluate
from resnet_lab.engine.metrics import EpochMetrics
from resnet_lab.engine.run import LabRun, RunConfig
from resnet_lab.engine.step import StepConfig

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz"
DEFAULT_LOG = ROOT / "results" / "cpu-trajectories" / "runs.jsonl"
TAIL_FRACTION = 0.5  # d_s averages the per-step loss difference over the last half of the steps
DIVERGED = 1e-3  # |loss difference| at which two same-seed trajectories count as having parted


@dataclass(frozen=True)
class Config:
    """One configuration: the changes a C8 variant makes to the eager RunConfig that run on a CPU."""

    name: str
    seeds: tuple[int, ...]
    device_loader: bool = False
    sync_phases: bool = True
    channels_last: bool = False
    bf16: bool = False
    compile_mode: str | None = None

    def run_config(self, base: RunConfig, seed: int) -> RunConfig:
        step = StepConfig(channels_last=self.channels_last, amp_dtype=torch.bfloat16 if self.bf16 else None)
        return replace(
            base,
            seed=seed,
            loader=replace(base.loader, seed=seed),
            step=step,
            compile_mode=self.compile_mode,
            device_loader=self.device_loader,
            sync_phases=self.sync_phases,
        )


# Priority order within a seed: eager first (every comparison needs it), then the single changes,
# then the two combinations that are H200's cuda-graph (uncompiled) and cuda-graph-compiled less the
# graph, the pair whose trajectories parted on the H200. bf16 is emulated on CPUs without
# AVX512_BF16/AMX, so the bf16 configurations are the dearest and come last.
FAST = {"device_loader": True, "sync_phases": False, "channels_last": True, "bf16": True}
CONFIGS: dict[str, Config] = {
    c.name: c
    for c in (
        Config("eager", seeds=(0, 1, 2, 3, 4)),
        Config(
            "unsynced", seeds=(0,), sync_phases=False
        ),  # on a CPU it must be bit-identical to eager: one seed says so
        Config("device-loader", seeds=(0, 1, 2), device_loader=True),
        Config("channels-last", seeds=(0, 1, 2), channels_last=True),
        Config("compile", seeds=(0, 1, 2), compile_mode="default"),
        Config("bf16", seeds=(0, 1, 2), bf16=True),
        Config("fast-uncompiled", seeds=(0, 1, 2), **FAST),
        Config("fast-compiled", seeds=(0, 1, 2), **FAST, compile_mode="default"),
    )
}


# ----------------------------------------------------------------------------- running


class StepRecorder(EpochMetrics):
    """EpochMetrics that also keeps each batch's loss and hits as device tensors (no sync per step)."""

    losses: list[torch.Tensor]
    hits: list[torch.Tensor]

    def accumulate(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        super().accumulate(loss, logits, y)
        if not hasattr(self, "losses"):
            self.losses, self.hits = [], []
        self.losses.append(loss.detach().float().clone())
        self.hits.append(logits.argmax(dim=1).eq(y).sum())


@contextmanager
def recording_steps() -> Iterator[list[StepRecorder]]:
    # The loop builds its EpochMetrics itself; swapping the class it uses (outside the model, so no
    # compiled graph sees it) records per-step figures through the variant's own loop unchanged.
    made: list[StepRecorder] = []

    class Recorder(StepRecorder):
        def __post_init__(self) -> None:
            super().__post_init__()
            made.append(self)

    original = loop.EpochMetrics
    loop.EpochMetrics = Recorder  # type: ignore[misc]
    try:
        yield made
    finally:
        loop.EpochMetrics = original  # type: ignore[misc]


def one_run(config: Config, seed: int, args: argparse.Namespace, train_set, test_set) -> dict[str, object]:
    base = RunConfig(
        device="cpu",
        epochs=1,
        max_batches=args.steps,
        eval_batches=args.eval_batches,
        loader=LoaderConfig(batch_size=args.batch, test_batch_size=100, num_workers=0),
    )
    run_config = config.run_config(base, seed)
    start = time.perf_counter()
    run = LabRun(run_config, train_set, test_set)
    with recording_steps() as made:
        record = run.run_epoch()
    train_s = time.perf_counter() - start
    metrics = made[-1]
    losses = [float(v) for v in torch.stack(metrics.losses).tolist()]
    hits = [int(v) for v in torch.stack(metrics.hits).tolist()]
    # The weights, judged by one path for every configuration: the eager fp32 model.
    test = evaluate(run.model, run.test_loader, "cpu", max_batches=args.eval_batches, step=StepConfig())
    params = torch.cat([p.detach().double().flatten() for p in run.model.parameters()])
    return {
        "config": config.name,
        "seed": seed,
        "steps": args.steps,
        "batch": args.batch,
        "run_config": run_config.as_record(),
        "step_loss": losses,
        "step_correct": hits,
        "train_loss": record["loss"],
        "train_top1": record["top1"],
        "images": record["images"],
        "test_loss": test["test_loss"],
        "test_top1": test["test_top1"],
        "test_images": test["test_images"],
        "param_norm": float(params.norm()),
        "param_sum": float(params.sum()),
        "train_wall_s": train_s,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "commit": commit(),
        "cpu": platform.processor() or cpu_model(),
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def read_log(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    runs = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            runs.append(json.loads(line))
        except json.JSONDecodeError:
            print(f"{path}:{number}: skipped a line that is not JSON (a run cut off while writing?)", file=sys.stderr)
    return runs


def append(path: Path, run: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as stream:
        stream.write(json.dumps(run) + "\n")
        stream.flush()
        os.fsync(stream.fileno())


# The order runs are made in: first what answers most per CPU-minute (eager, and the fp32 changes
# the H200 could not tell apart: the device loader and compile; the unsynced loop once), then more
# seeds of those, then channels_last, then the bf16 configurations, which are emulated on CPUs
# without AVX512_BF16/AMX and cost several fp32 runs each. A log cut short is still paired by seed.
ORDER = (
    ("eager", 0),
    ("device-loader", 0),
    ("compile", 0),
    ("unsynced", 0),
    ("eager", 1),
    ("device-loader", 1),
    ("compile", 1),
    ("eager", 2),
    ("device-loader", 2),
    ("compile", 2),
    ("channels-last", 0),
    ("channels-last", 1),
    ("channels-last", 2),
    ("eager", 3),
    ("eager", 4),
    ("fast-compiled", 0),
    ("fast-uncompiled", 0),
    ("bf16", 0),
    ("fast-compiled", 1),
    ("fast-uncompiled", 1),
    ("bf16", 1),
    ("fast-compiled", 2),
    ("fast-uncompiled", 2),
    ("bf16", 2),
)


def plan(configs: list[Config]) -> list[tuple[Config, int]]:
    """The runs of `configs` in ORDER (every config's seeds are in it: tests/test_trajectories.py)."""
    names = {c.name for c in configs}
    return [(CONFIGS[name], seed) for name, seed in ORDER if name in names]


def train_all(args: argparse.Namespace) -> int:
    configs = [CONFIGS[name] for name in (args.only or CONFIGS)]
    done = {(r["config"], r["seed"], r["steps"], r["batch"]) for r in read_log(args.log)}
    todo = [(c, s) for c, s in plan(configs) if (c.name, s, args.steps, args.batch) not in done]
    print(f"{len(todo)} runs to do, {len(done)} in {args.log}", flush=True)
    if not todo:
        return 0
    train_set, test_set = load_datasets(DataConfig(source=str(args.data)))
    deadline = time.monotonic() + args.budget_min * 60
    for config, seed in todo:
        if time.monotonic() > deadline:
            print(f"budget of {args.budget_min} min spent; rerun to continue", flush=True)
            return 0
        print(f"{time.strftime('%H:%M:%S')} {config.name} seed {seed} ...", flush=True)
        run = one_run(config, seed, args, train_set, test_set)
        append(args.log, run)
        print(
            f"  {run['train_wall_s']:.0f} s, train loss {run['train_loss']:.4f} top-1 {run['train_top1']:.3f}, "
            f"test top-1 {run['test_top1']:.3f}",
            flush=True,
        )
    return 0


# ----------------------------------------------------------------------------- judging


def tail_mean(values: list[float]) -> float:
    tail = values[int(len(values) * (1 - TAIL_FRACTION)) :]
    return statistics.fmean(tail)


def t_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided t interval (scipy's t quantile)."""
    from scipy import stats

    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def early_difference(a: list[float], b: list[float], steps: int = 3) -> str:
    """|a - b| / b at the first `steps` steps: 1 is the forward from the same weights, 2 and 3 show the first
    updates."""
    return "/".join(f"{abs(x - y) / abs(y):.0e}" for x, y in zip(a[:steps], b[:steps], strict=False))


def first_parting(a: list[float], b: list[float]) -> int | None:
    for step, (x, y) in enumerate(zip(a, b, strict=False), 1):
        if abs(x - y) > DIVERGED:
            return step
    return None


def summarize(runs: list[dict[str, object]]) -> str:
    by = {(r["config"], r["seed"]): r for r in runs}
    configs = [c for c in CONFIGS if any(k[0] == c for k in by)]
    eager = {s: r for (c, s), r in by.items() if c == "eager"}
    lines = []
    if not runs:
        return "no runs in the log yet"
    r0 = runs[0]
    lines.append(f"{len(runs)} runs; batch {r0['batch']}, {r0['steps']} steps; torch {r0['torch']}; {r0['cpu']}")
    lines.append("")
    lines.append(
        "| config | seeds | train loss, last half (mean ± sd) | train top-1 "
        "(all steps) | test top-1 | loss rel. diff vs eager at steps 1/2/3 "
        "(per seed) | steps until parted (>1e-3) |"
    )
    lines.append("|---|---|---|---|---|---|---|")
    for name in configs:
        mine = [by[(name, s)] for s in sorted(s for c, s in by if c == name)]
        tails = [tail_mean(r["step_loss"]) for r in mine]
        top1 = [r["train_top1"] for r in mine]
        test = [r["test_top1"] for r in mine]
        first = [
            early_difference(r["step_loss"], eager[r["seed"]]["step_loss"])
            for r in mine
            if r["seed"] in eager and name != "eager"
        ]
        parted = [
            first_parting(r["step_loss"], eager[r["seed"]]["step_loss"])
            for r in mine
            if r["seed"] in eager and name != "eager"
        ]
        sd = lambda v: statistics.stdev(v) if len(v) > 1 else float("nan")  # noqa: E731
        lines.append(
            f"| {name} | {','.join(str(r['seed']) for r in mine)} | {statistics.fmean(tails):.4f} ± {sd(tails):.4f} | "
            f"{statistics.fmean(top1):.4f} ± {sd(top1):.4f} | {statistics.fmean(test):.4f} ± {sd(test):.4f} | "
            f"{'; '.join(first) or '-'} | {', '.join('never' if p is None else str(p) for p in parted) or '-'} |"
        )
    lines.append("")
    lines.append(
        "Paired against eager at the same seed: d_s = variant's minus eager's "
        "per-step loss, averaged over the last half of the steps."
    )
    lines.append("Seed-to-seed noise: the same figure between eager runs of different seeds (all pairs).")
    lines.append("")
    seeds = sorted(eager)
    noise = [
        tail_mean([a - b for a, b in zip(eager[s]["step_loss"], eager[t]["step_loss"], strict=False)])
        for i, s in enumerate(seeds)
        for t in seeds[i + 1 :]
    ]
    noise_sd = statistics.stdev(noise) if len(noise) > 1 else float("nan")
    lines.append(f"eager vs eager, {len(noise)} seed pairs: sd of the tail loss difference {noise_sd:.4f}")
    lines.append("")
    lines.append("| config | seeds paired | d_s per seed | mean d | 95% t interval | mean d / eager seed-pair sd |")
    lines.append("|---|---|---|---|---|---|")
    for name in configs:
        if name == "eager":
            continue
        ds = [
            tail_mean([a - b for a, b in zip(by[(name, s)]["step_loss"], eager[s]["step_loss"], strict=False)])
            for s in seeds
            if (name, s) in by
        ]
        if not ds:
            continue
        mean, low, high = t_interval(ds)
        lines.append(
            f"| {name} | {len(ds)} | {', '.join(f'{d:+.4f}' for d in ds)} | "
            f"{mean:+.4f} | [{low:+.4f}, {high:+.4f}] | {mean / noise_sd:+.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--log", type=Path, default=DEFAULT_LOG)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--eval-batches", type=int, default=10, help="test batches of 100 evaluated after each run")
    parser.add_argument("--budget-min", type=float, default=60.0, help="start no new run after this many minutes")
    parser.add_argument("--only", nargs="+", choices=list(CONFIGS), help="train only these configurations")
    parser.add_argument("--summarize", action="store_true", help="print the tables from the log and train nothing")
    args = parser.parse_args(argv)
    if args.summarize:
        runs = [r for r in read_log(args.log) if (r["steps"], r["batch"]) == (args.steps, args.batch)]
        print(summarize(runs))
        return 0
    return train_all(args)


if __name__ == "__main__":
    sys.exit(main())
