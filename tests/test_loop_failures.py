"""engine/loop.py when an epoch goes wrong: divergence at the synced and the unsynced checks, a loader worker that
died, other loader errors, refused arguments.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
import torch
from pinnedtime import (
    tiny_batches,
    tiny_model,
)
from torch import nn

from resnet_lab.engine.loop import evaluate, train_one_epoch
from resnet_lab.engine.workers import LoaderWorkerError
from resnet_lab.errors import DivergenceError, LabError


def nan_model() -> nn.Module:
    model = tiny_model()
    with torch.no_grad():
        model[1].weight.fill_(float("nan"))
    return model


@pytest.mark.parametrize(
    ("check_every", "batch", "finished"),
    [(2, 1, [1]), (50, 2, [1, 2, 3])],
    ids=["every-2", "after-the-epoch"],
)
def test_unsynced_loop_catches_divergence_at_its_check(check_every, batch, finished):
    """No per-batch sync: a NaN loss is found at the first batch i with (i + 1) % check_every == 0, else after the
    epoch."""
    model = nan_model()
    seen = []
    with pytest.raises(DivergenceError) as err:
        train_one_epoch(
            model,
            tiny_batches(3),
            torch.optim.SGD(model.parameters(), lr=0.1),
            "cpu",
            epoch=2,
            sync_phases=False,
            check_every=check_every,
            on_batch_end=seen.append,
        )
    assert (err.value.epoch, err.value.batch) == (2, batch) and math.isnan(err.value.loss)
    assert seen == finished


def test_default_check_is_every_fifty_batches():
    model = nan_model()
    with pytest.raises(DivergenceError) as err:
        train_one_epoch(
            model, tiny_batches(51, size=1), torch.optim.SGD(model.parameters(), lr=0.1), "cpu", sync_phases=False
        )
    assert err.value.batch == 49


def test_synced_loop_catches_divergence_at_the_first_batch():
    model = nan_model()
    with pytest.raises(DivergenceError) as err:
        train_one_epoch(
            model, tiny_batches(3), torch.optim.SGD(model.parameters(), lr=0.1), "cpu", epoch=5, check_every=50
        )
    assert (err.value.epoch, err.value.batch) == (5, 0) and math.isnan(err.value.loss)


class FailingLoader:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __iter__(self) -> Iterator:
        yield from tiny_batches(1)
        raise self.exc


class DeadWorkerIterator:
    """A multi-process DataLoader iterator, as far as the loop looks at one, whose worker was killed after
    `delivered` batches."""

    def __init__(self, delivered: int) -> None:
        self._workers = [SimpleNamespace(exitcode=-9, pid=4321)]
        self.batches = tiny_batches(delivered)

    def __iter__(self) -> DeadWorkerIterator:
        return self

    def __next__(self):
        if self.batches:
            return self.batches.pop()
        raise RuntimeError("DataLoader worker (pid 4321) is killed by signal: Killed.")


class DeadWorkerLoader:
    def __init__(self, delivered: int = 1) -> None:
        self.delivered = delivered

    def __iter__(self) -> DeadWorkerIterator:
        return DeadWorkerIterator(self.delivered)


def test_a_dead_worker_becomes_a_loader_worker_error_naming_it():
    model = tiny_model()
    with pytest.raises(LoaderWorkerError, match=r"\(epoch 3, batch 1\): pid 4321 killed by SIGKILL;"):
        train_one_epoch(model, DeadWorkerLoader(), torch.optim.SGD(model.parameters(), lr=0.1), "cpu", epoch=3)


@pytest.mark.parametrize("delivered", [0, 2])
def test_a_worker_dead_during_evaluation_is_named_with_the_batch_it_was_fetching(delivered):
    with pytest.raises(
        LoaderWorkerError, match=rf"died during evaluation \(batch {delivered}\): pid 4321 killed by SIGKILL;"
    ) as caught:
        evaluate(tiny_model(), DeadWorkerLoader(delivered), "cpu")
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_other_errors_during_evaluation_pass_through_unchanged():
    with pytest.raises(RuntimeError, match=r"^unrelated$"):
        evaluate(tiny_model(), FailingLoader(RuntimeError("unrelated")), "cpu")


def test_other_errors_pass_through_unchanged():
    model = tiny_model()
    with pytest.raises(RuntimeError, match=r"^unrelated$"):
        train_one_epoch(
            model, FailingLoader(RuntimeError("unrelated")), torch.optim.SGD(model.parameters(), lr=0.1), "cpu"
        )


def test_an_empty_loader_is_refused():
    model = tiny_model()
    with pytest.raises(LabError) as err:
        train_one_epoch(model, [], torch.optim.SGD(model.parameters(), lr=0.1), "cpu")
    assert str(err.value) == "the training loader yielded no batches: is the dataset empty?"


def test_zero_max_batches_is_refused_and_one_is_allowed():
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(LabError, match="got 0"):
        train_one_epoch(model, tiny_batches(1), opt, "cpu", max_batches=0)
    assert train_one_epoch(model, tiny_batches(3), opt, "cpu", max_batches=1)["batches"] == 1
