"""Errors a user can fix. The CLI prints them as one line and exits 2; pytest shows them as usage errors."""

from __future__ import annotations


class LabError(Exception):
    """Bad input or environment: the message says what was wrong and how to fix it."""


class DataError(LabError):
    """A data source is missing, corrupt or has an unrecognized layout."""


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss; raised at once with the epoch and batch."""

    def __init__(self, epoch: int, batch: int, loss: float) -> None:
        self.epoch, self.batch, self.loss = epoch, batch, loss
        super().__init__(
            f"training diverged: loss is {loss} at epoch {epoch}, batch {batch}; "
            "lower the learning rate or check the input data"
        )

    def __reduce__(self) -> tuple[type, tuple[int, int, float]]:
        # Rebuilt from its fields when it crosses a process boundary (perf/isolated.py, the ranks).
        return (DivergenceError, (self.epoch, self.batch, self.loss))


class RankFailure(RuntimeError):
    """A data-parallel rank died, failed or lost contact mid-run; the message names the rank where it is known."""
