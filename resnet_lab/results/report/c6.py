"""C6: the five optimizers at lr 0.1: training time, loss and top-1 per epoch."""

from __future__ import annotations

from collections.abc import Sequence

from ...spec import groups
from ..runs import Run
from .format import Figures
from .training import training_table_section


def section(runs: Sequence[Run], figures: Figures) -> list[str]:
    return training_table_section(
        runs,
        figures,
        groups.C6,
        "optimizer",
        "## C6: optimizers",
        "SGD, SGD-Nesterov, Adagrad, Adadelta, Adam; lr 0.1, weight decay "
        "5e-4, momentum 0.9 where the optimizer has it. "
        "Final loss and top-1 are the last epoch's; test top-1 is evaluated after it where the run did.",
        str,
    )
