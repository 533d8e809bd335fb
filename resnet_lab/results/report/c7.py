"""C7: C6's SGD setup with and without BatchNorm."""

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
        groups.C7,
        "batch_norm",
        "## C7: with and without BatchNorm",
        "C6's SGD setup; 'off' removes every BatchNorm layer (no conv bias either way).",
        lambda v: {True: "BN on", False: "BN off", "True": "BN on", "False": "BN off"}.get(v, f"batch_norm={v}"),
    )
