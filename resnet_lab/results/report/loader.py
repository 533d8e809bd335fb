"""Loader pipelines: the lab's PIL DataLoader against the device-resident loader, images/s."""

from __future__ import annotations

from collections.abc import Sequence

from ...spec import groups
from ..runs import Run, as_number
from .format import NR, Figures, fmt_num, fmt_rate, fmt_s, md_table, not_run, sources_line


def section(runs: Sequence[Run], figures: Figures | None = None) -> list[str]:
    lines = ["## Loader pipelines: DataLoader vs device-resident", ""]
    found = [(run, b) for run in runs for b in run.group(groups.LOADER)]
    if not found:
        return lines + not_run(groups.LOADER, runs)
    lines += sources_line(run for run, _ in found)
    rows = []
    for run, b in found:
        speedups = ", ".join(
            f"{fmt_num(v, 3)}× vs {k.removeprefix('speedup_vs_').replace('_w', ' w')}"
            for k, v in b.extra_info.items()
            if k.startswith("speedup_vs_") and as_number(v) is not None
        )
        rows.append(
            [
                str(b.param("pipeline", NR)),
                str(b.param("workers")),
                str(b.param("device", NR)),
                fmt_rate(b.number("images_per_s")),
                fmt_s(b.stat("median")),
                speedups,
                f"`{run.label}`",
            ]
        )
    lines += md_table(["pipeline", "workers", "device", "images/s", "median epoch (s)", "speedup", "run"], rows)
    return lines
