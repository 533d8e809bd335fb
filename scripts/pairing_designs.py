"""How each A/B pairing design reads a compute slowdown and a waiting slowdown of the same size (issue 23).

    python scripts/pairing_designs.py [--blocks 6] [--steps 3] [--batch 32] [--loader-batches 3] [--json OUT]

Two long-lived worker processes, BASE and NEW, each holding a CIFAR ResNet-18 with SGD and the lab's
PIL loader (main process, synthetic data). A block is one training phase (`--steps` training steps)
followed by one loader phase (`--loader-batches` batches), like the gate's C2 and loader benchmarks.
NEW carries a planted change: `compute` (an extra no-grad forward per step, sized to +10% of a step)
or `wait` (a sleep of 10% of a step per step, and 10% of a batch per loader batch). Sizes are
calibrated first on BASE, alone, at the sequential design's thread count, so +10% means the same
seconds in every design. Designs:

  side-by-side   both workers at once, 1 torch thread each, each running its blocks freely (the gate
                 as of issue 16: two pytest runs started together and left to drift);
  barrier        both at once, 1 thread each, both started together at every phase (train, loader);
  sequential     one after the other on the otherwise idle machine, all torch threads, ABBA order.

Per phase each worker reports wall time (perf_counter) and process CPU time (process_time: every
thread of the process). The ratio NEW/BASE per design and phase is the median over blocks of the
per-block ratios; the reference is the sequential design (one run after another, idle machine).
Prints a markdown table; --json keeps every measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

DESIGNS = ("side-by-side", "barrier", "sequential")
PLANTS = ("compute", "wait")


# ---------------------------------------------------------------------------
# worker: reads one JSON command per line on stdin, answers one JSON line on stdout
# ---------------------------------------------------------------------------


def worker(batch: int) -> None:
    import torch
    import torch.nn.functional as F

    from resnet_lab.data import LoaderConfig, make_train_loader
    from resnet_lab.data.sources import DataConfig, load_datasets
    from resnet_lab.model import resnet18

    torch.manual_seed(0)
    model = resnet18()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    train_set, _ = load_datasets(DataConfig(train_size=2048, test_size=16))
    loader = make_train_loader(train_set, LoaderConfig(num_workers=0))

    def step(plant: dict) -> None:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if plant.get("extra_images"):
            with torch.no_grad():
                model(x[: plant["extra_images"]])
        if plant.get("step_sleep_s"):
            time.sleep(plant["step_sleep_s"])

    def train_phase(steps: int, plant: dict) -> dict:
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(steps):
            step(plant)
        return {"train_s": time.perf_counter() - wall, "train_cpu_s": time.process_time() - cpu}

    def loader_phase(batches: int, plant: dict) -> dict:
        wall, cpu = time.perf_counter(), time.process_time()
        it = iter(loader)
        for _ in range(batches):
            next(it)
            if plant.get("batch_sleep_s"):
                time.sleep(plant["batch_sleep_s"])
        del it
        return {"load_s": time.perf_counter() - wall, "load_cpu_s": time.process_time() - cpu}

    def forward_s(steps: int) -> float:
        start = time.perf_counter()
        with torch.no_grad():
            for _ in range(steps):
                model(x)
        return (time.perf_counter() - start) / steps

    step({})  # warm-up
    next(iter(loader))
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        torch.set_num_threads(cmd["threads"])
        plant = cmd.get("plant", {})
        if cmd["do"] == "train":
            out = train_phase(cmd["steps"], plant)
        elif cmd["do"] == "load":
            out = loader_phase(cmd["batches"], plant)
        elif cmd["do"] == "free":  # whole blocks, no synchronisation with the other side
            out = {
                "blocks": [
                    {**train_phase(cmd["steps"], plant), **loader_phase(cmd["batches"], plant)}
                    for _ in range(cmd["blocks"])
                ]
            }
        elif cmd["do"] == "calibrate":
            step({})
            out = {**train_phase(cmd["steps"], {}), **loader_phase(cmd["batches"], {}), "forward_s": forward_s(2)}
        else:
            out = {"error": cmd["do"]}
        print(json.dumps(out), flush=True)


# ---------------------------------------------------------------------------
# parent
# ---------------------------------------------------------------------------


class Worker:
    def __init__(self, batch: int) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": str(os.cpu_count() or 2)}
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", "--batch", str(batch)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert json.loads(self.proc.stdout.readline())["ready"]

    def send(self, **cmd) -> None:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def receive(self) -> dict:
        return json.loads(self.proc.stdout.readline())

    def ask(self, **cmd) -> dict:
        self.send(**cmd)
        return self.receive()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def together(workers: list[Worker], cmds: list[dict]) -> list[dict]:
    for w, c in zip(workers, cmds, strict=True):
        w.send(**c)
    return [w.receive() for w in workers]


def run_design(
    design: str, base: Worker, new: Worker, plant: dict, args: argparse.Namespace, threads: int
) -> list[dict]:
    """Per block: {"base": {...}, "new": {...}} with train_s, train_cpu_s, load_s, load_cpu_s."""
    common = {"steps": args.steps, "batches": args.loader_batches}
    blocks = []
    if design == "side-by-side":
        for half in range(2):  # which side is sent first alternates, as in the gate's ABBA
            order = [(base, {}), (new, plant)] if half == 0 else [(new, plant), (base, {})]
            res = together(
                [w for w, _ in order],
                [{"do": "free", "threads": 1, "plant": p, "blocks": args.blocks // 2, **common} for _, p in order],
            )
            by_side = dict(zip([("base" if w is base else "new") for w, _ in order], res, strict=False))
            blocks += [
                {"base": b, "new": n} for b, n in zip(by_side["base"]["blocks"], by_side["new"]["blocks"], strict=False)
            ]
    elif design == "barrier":
        for _ in range(args.blocks):
            t = together(
                [base, new],
                [
                    {"do": "train", "threads": 1, "plant": {}, **common},
                    {"do": "train", "threads": 1, "plant": plant, **common},
                ],
            )
            loads = together(
                [base, new],
                [
                    {"do": "load", "threads": 1, "plant": {}, **common},
                    {"do": "load", "threads": 1, "plant": plant, **common},
                ],
            )
            blocks.append({"base": {**t[0], **loads[0]}, "new": {**t[1], **loads[1]}})
    else:
        for b in range(args.blocks):
            order = [("base", base, {}), ("new", new, plant)]
            if b % 2:
                order.reverse()
            res = {}
            for name, w, p in order:
                res[name] = {
                    **w.ask(do="train", threads=threads, plant=p, **common),
                    **w.ask(do="load", threads=threads, plant=p, **common),
                }
            blocks.append(res)
    return blocks


def ratio(blocks: list[dict], key: str) -> float:
    return statistics.median(b["new"][key] / b["base"][key] for b in blocks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--loader-batches", type=int, default=3)
    parser.add_argument("--effect", type=float, default=0.10)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.batch)
        return 0
    threads = os.cpu_count() or 2
    base, new = Worker(args.batch), Worker(args.batch)
    try:
        cal = [
            base.ask(do="calibrate", threads=threads, steps=args.steps, batches=args.loader_batches) for _ in range(2)
        ][-1]
        step_s, batch_s = cal["train_s"] / args.steps, cal["load_s"] / args.loader_batches
        plants = {
            "compute": {"extra_images": max(1, round(args.batch * args.effect * step_s / cal["forward_s"]))},
            "wait": {"step_sleep_s": args.effect * step_s, "batch_sleep_s": args.effect * batch_s},
        }
        print(
            f"calibration ({threads} threads, alone): step {step_s:.3f} s, no-grad "
            f"forward of the batch {cal['forward_s']:.3f} s, "
            f"loader batch {batch_s:.3f} s -> plants {plants}",
            flush=True,
        )
        results = {}
        for plant_name in PLANTS:
            for design in DESIGNS:
                start = time.perf_counter()
                blocks = run_design(design, base, new, plants[plant_name], args, threads)
                results[f"{design}/{plant_name}"] = blocks
                print(
                    f"{design:13s} {plant_name:8s} train {ratio(blocks, 'train_s'):.3f} "
                    f"(cpu {ratio(blocks, 'train_cpu_s'):.3f})  "
                    f"loader {ratio(blocks, 'load_s'):.3f} (cpu {ratio(blocks, 'load_cpu_s'):.3f})  "
                    "base train "
                    f"{statistics.median(b['base']['train_s'] for b in blocks):.2f} s  "
                    f"[{time.perf_counter() - start:.0f} s]",
                    flush=True,
                )
    finally:
        base.close()
        new.close()
    print(
        "\n| design | planted | train wall ratio | train CPU ratio | loader "
        "wall ratio | loader CPU ratio | base train s (median) |"
    )
    print("|---|---|---|---|---|---|---|")
    for key, blocks in results.items():
        design, plant_name = key.split("/")
        print(
            f"| {design} | {plant_name} +{args.effect:.0%} | "
            f"{ratio(blocks, 'train_s'):.3f} | {ratio(blocks, 'train_cpu_s'):.3f} | "
            f"{ratio(blocks, 'load_s'):.3f} | {ratio(blocks, 'load_cpu_s'):.3f} | "
            f"{statistics.median(b['base']['train_s'] for b in blocks):.2f} |"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "args": {k: v for k, v in vars(args).items() if k != "json"},
                    "calibration": cal,
                    "plants": plants,
                    "results": results,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
