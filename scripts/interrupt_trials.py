"""Interrupt `resnet-lab train --json out.json` at random moments; out.json must never be partial.

Each trial overwrites an existing, valid out.json ("old") with a tiny training run and sends the
process SIGINT or SIGKILL, either after a random delay or the moment the atomic writer's temporary
file (.out.json.*.tmp) appears, i.e. while the new JSON is being written. Afterwards out.json must
be the old file byte for byte or the new run's complete JSON; after SIGINT no temporary file may be
left behind (after SIGKILL one may: nothing can clean up after SIGKILL, and it is never read).

    python scripts/interrupt_trials.py 24             # 24 trials, half SIGINT, half SIGKILL
    python scripts/interrupt_trials.py 40 --seed 3 --data path/to/image-folder

Prints one line per trial and a summary table per signal; exit status 1 when any trial broke the
rule. tests/test_interrupts.py imports `run_trial` from here and runs a few trials.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

OLD = {
    "note": "results of an earlier run; must survive any interrupted overwrite",
    "epochs": [{"epoch": 1, "loss": 2.3}],
}
OLD_BYTES = (json.dumps(OLD, indent=2) + "\n").encode()
NEW_KEYS = {"config", "data", "machine", "epochs", "summary", "test"}
AT_WRITE = "at-write"
INTERRUPTED = "resnet-lab: interrupted; files already written are complete, nothing half-written was kept"


@dataclass
class Trial:
    signal: str  # SIGINT or SIGKILL
    trigger: str  # "delay 2.31s" or "at-write"
    sent: bool  # False when the run had already finished
    write_seen: bool  # the temporary file was seen (at-write trials)
    returncode: int
    outcome: str  # old, new, partial (invalid JSON or wrong content), missing
    leftover_tmp: int
    traceback: bool
    stderr: str

    @property
    def ok(self) -> bool:
        if self.outcome not in ("old", "new"):
            return False
        return self.signal == "SIGKILL" or self.leftover_tmp == 0


def train_command(out: Path, data: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "resnet_lab",
        "train",
        "--data",
        data,
        "--epochs",
        "1",
        "--max-batches",
        "1",
        "--batch-size",
        "8",
        "--eval-batches",
        "1",
        "--num-workers",
        "0",
        "--json",
        str(out),
    ]


def classify(out: Path) -> str:
    if not out.exists():
        return "missing"
    payload = out.read_bytes()
    if payload == OLD_BYTES:
        return "old"
    try:
        record = json.loads(payload)
    except ValueError:
        return "partial"
    complete = (
        isinstance(record, dict) and set(record) >= NEW_KEYS and len(record["epochs"]) == 1 and payload.endswith(b"}\n")
    )
    return "new" if complete else "partial"


def _tmp_files(folder: Path, name: str) -> list[Path]:
    return sorted(folder.glob(f".{name}.*.tmp"))


def run_trial(
    folder: Path,
    sig: signal.Signals,
    trigger: float | str,
    data: str = "synthetic",
    env: dict[str, str] | None = None,
    timeout: float = 180.0,
) -> Trial:
    """One trial in `folder`: write the old out.json, start the run, signal it, classify what is left."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "out.json"
    for stale in _tmp_files(folder, out.name):
        stale.unlink()
    out.write_bytes(OLD_BYTES)
    proc = subprocess.Popen(train_command(out, data), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + timeout
    write_seen = False
    try:
        if trigger == AT_WRITE:
            # Poll for the writer's temporary file every ~0.5 ms; signal the moment it exists.
            prefix = f".{out.name}."
            while proc.poll() is None and time.monotonic() < deadline:
                with os.scandir(folder) as entries:
                    if any(e.name.startswith(prefix) and e.name.endswith(".tmp") for e in entries):
                        write_seen = True
                        break
                time.sleep(0.0005)
        else:
            end = time.monotonic() + float(trigger)
            while proc.poll() is None and time.monotonic() < end:
                time.sleep(0.005)
        sent = proc.poll() is None
        if sent:
            proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    text = stderr.decode(errors="replace")
    leftover = _tmp_files(folder, out.name)
    return Trial(
        signal=sig.name,
        trigger=AT_WRITE if trigger == AT_WRITE else f"delay {float(trigger):.2f}s",
        sent=sent,
        write_seen=write_seen,
        returncode=proc.returncode,
        outcome=classify(out),
        leftover_tmp=len(leftover),
        traceback="Traceback" in text,
        stderr=text,
    )


def summary_table(trials: list[Trial]) -> str:
    header = (
        "| signal | trials | signal sent | at-write (tmp seen) | old | new | "
        "partial/missing | tmp left | exit statuses | traceback on stderr | ok |"
    )
    rows = [header, "|" + "---|" * (header.count("|") - 1)]
    for name in ("SIGINT", "SIGKILL"):
        group = [t for t in trials if t.signal == name]
        if not group:
            continue
        outcomes = collections.Counter(t.outcome for t in group)
        statuses = collections.Counter(t.returncode for t in group)
        at_write = [t for t in group if t.trigger == AT_WRITE]
        rows.append(
            f"| {name} | {len(group)} | {sum(t.sent for t in group)} | "
            f"{len(at_write)} ({sum(t.write_seen for t in at_write)}) "
            f"| {outcomes['old']} | {outcomes['new']} | {outcomes['partial'] + outcomes['missing']} "
            f"| {sum(t.leftover_tmp > 0 for t in group)} | "
            f"{', '.join(f'{k}: {v}' for k, v in sorted(statuses.items()))} "
            f"| {sum(t.traceback for t in group)} | {sum(t.ok for t in group)}/{len(group)} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trials", type=int, help="number of trials (>= 20 for a useful table)")
    parser.add_argument("--seed", type=int, default=0, help="seed for signal order and delays. Default: 0")
    parser.add_argument("--data", default="synthetic", help="--data for the runs. Default: synthetic")
    parser.add_argument(
        "--at-write",
        type=float,
        default=0.34,
        metavar="FRACTION",
        help="fraction of trials signalled as the JSON is written; the rest after a random delay. Default: 0.34",
    )
    args = parser.parse_args(argv)
    if args.trials < 1:
        parser.error("trials must be >= 1")
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="interrupt-trials-") as scratch:
        env = {**os.environ, "RESNET_LAB_CACHE": str(Path(scratch) / "cache")}
        # One uninterrupted run: checks the setup and sets the range of the random delays.
        start = time.monotonic()
        baseline = run_trial(Path(scratch) / "baseline", signal.SIGINT, 10_000.0, args.data, env)
        duration = time.monotonic() - start
        if baseline.outcome != "new" or baseline.returncode != 0:
            print(f"the uninterrupted run failed (exit {baseline.returncode}):\n{baseline.stderr}", file=sys.stderr)
            return 2
        print(f"uninterrupted run: {duration:.1f}s; delays drawn from [0, {1.05 * duration:.1f}]s")
        trials = []
        for i in range(args.trials):
            sig = signal.SIGINT if i % 2 == 0 else signal.SIGKILL
            trigger: float | str = AT_WRITE if rng.random() < args.at_write else rng.uniform(0.0, 1.05 * duration)
            trial = run_trial(Path(scratch) / f"trial-{i:03d}", sig, trigger, args.data, env)
            trials.append(trial)
            print(
                f"{i + 1:3d} {trial.signal:7s} {trial.trigger:14s} sent={trial.sent!s:5s} seen={trial.write_seen!s:5s} "
                f"exit={trial.returncode:4d} {trial.outcome:8s} tmp={trial.leftover_tmp} traceback={trial.traceback} "
                f"{'ok' if trial.ok else 'BROKEN'}",
                flush=True,
            )
            last = trial.stderr.strip().splitlines()[-1:] if trial.stderr.strip() else []
            if last and last[0] != INTERRUPTED:
                print(f"    stderr ends: {last[0][:160]}")
    print()
    print(summary_table(trials))
    broken = [t for t in trials if not t.ok]
    for trial in broken:
        print(f"\nBROKEN: {trial}", file=sys.stderr)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
