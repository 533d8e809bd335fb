"""Helpers for the data-parallel tests: rank commands (a module, so spawned ranks can unpickle them by name), torchrun.

Each rank command runs on every rank of a `RankGroup` and returns something small for rank 0 to compare.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from datafixtures import CLASSES, random_images

from resnet_lab.data import LabDataset, LoaderConfig, test_transform, train_transform
from resnet_lab.distributed.ddp import DataParallelRun
from resnet_lab.distributed.launch import RankContext
from resnet_lab.engine.run import RunConfig
from resnet_lab.model import resnet18
from resnet_lab.optim import make_optimizer

ROOT = Path(__file__).resolve().parent.parent
TORCHRUN = Path(sys.executable).with_name("torchrun")


class RecordingDataset(LabDataset):
    """Remembers every index it served (in this process: the tests use no DataLoader workers)."""

    def __init__(self, n: int, transform) -> None:
        super().__init__(random_images(n, 7), np.arange(n) % 10, CLASSES, "synthetic", transform)
        self.served: list[int] = []

    def __getitem__(self, index: int):
        self.served.append(int(index))
        return super().__getitem__(index)


def run_config(batch: int, max_batches: int | None = None, workers: int = 0, epochs: int = 1) -> RunConfig:
    return RunConfig(epochs=epochs, max_batches=max_batches, loader=LoaderConfig(batch_size=batch, num_workers=workers))


def one_step_vs_halves(context: RankContext) -> float:
    """One DDP step (each rank on its half of 8 images) against one process running both halves and averaging.

    Returns the largest absolute parameter difference on this rank. The transform is deterministic
    (no augmentation), so the reference sees exactly the tensors each rank trained on.
    """
    data = RecordingDataset(8, test_transform())
    run = DataParallelRun(run_config(batch=4, max_batches=1), data, world=context.world)
    start = {
        k: v.detach().clone() for k, v in run.model.state_dict().items()
    }  # identical on every rank after DDP's broadcast
    run.sampler.set_epoch(0)
    shards: list[list[int] | None] = [None] * context.world.world_size
    dist.all_gather_object(shards, list(run.sampler))
    run.run_epoch()

    reference = resnet18()
    reference.load_state_dict(start)
    reference.train()
    optimizer = make_optimizer("sgd", reference.parameters())
    grads = [torch.zeros_like(p) for p in reference.parameters()]
    for shard in shards:
        x = torch.stack([data[i][0] for i in shard])
        y = torch.tensor([int(data.labels[i]) for i in shard])
        reference.zero_grad(set_to_none=True)
        F.cross_entropy(reference(x), y).backward()  # BatchNorm normalizes this half on its own, as each rank did
        for g, p in zip(grads, reference.parameters(), strict=True):
            g += p.grad / len(shards)
    for g, p in zip(grads, reference.parameters(), strict=True):
        p.grad = g
    optimizer.step()
    with torch.no_grad():
        return max(
            float((a - b).abs().max()) for a, b in zip(run.model.parameters(), reference.parameters(), strict=True)
        )


def digest_after_steps(context: RankContext, steps: int) -> str:
    """sha256 of every parameter and momentum buffer after `steps` DDP steps on augmented, rank-specific data."""
    data = RecordingDataset(64, train_transform())
    run = DataParallelRun(run_config(batch=4, max_batches=steps), data, world=context.world)
    run.run_epoch()
    digest = hashlib.sha256()
    for p in run.model.parameters():
        digest.update(p.detach().numpy().tobytes())
        digest.update(run.optimizer.state[p]["momentum_buffer"].numpy().tobytes())
    return digest.hexdigest()


def indices_per_epoch(context: RankContext, size: int, epochs: int) -> list[list[int]]:
    """The dataset indices this rank's loader fetched in each of `epochs` training epochs."""
    data = RecordingDataset(size, train_transform())
    run = DataParallelRun(run_config(batch=4, epochs=epochs), data, world=context.world)
    seen = []
    for _ in range(epochs):
        data.served.clear()
        run.run_epoch()
        seen.append(list(data.served))
    return seen


class DyingRun(DataParallelRun):
    """Rank `victim` kills itself (SIGKILL) after `after` steps, mid-epoch."""

    victim, after = 1, 2

    def _after_step(self, batches: int) -> None:
        super()._after_step(batches)
        if self.world.rank == self.victim and batches == self.after:
            os.kill(os.getpid(), signal.SIGKILL)


def train_until_a_rank_dies(context: RankContext) -> None:
    """An epoch with a DataLoader worker per rank in which rank 1 is killed after two steps."""
    run = DyingRun(
        run_config(batch=4, max_batches=40, workers=1), RecordingDataset(256, train_transform()), world=context.world
    )
    run.run_epoch()


def fail_on_rank(context: RankContext, rank: int) -> int:
    if context.world.rank == rank:
        raise ValueError(f"deliberate failure on rank {rank}")
    dist.barrier()  # the others wait in a collective for the rank that failed
    return context.world.rank


def torchrun(*args: str, cwd: Path) -> subprocess.Popen:
    """`torchrun --standalone` (torchrun picks a free rendezvous port) with two ranks running this
    checkout's `resnet-lab train`."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen(
        [str(TORCHRUN), "--standalone", "--nproc-per-node", "2", "-m", "resnet_lab", "train", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def busy_for(context: RankContext, seconds: float) -> None:
    """A command that keeps every rank busy (outside any collective) for `seconds`."""
    import time

    time.sleep(seconds)
