"""C4: one DataLoader worker against the C3.2 worker count, loading and training side by side."""

from __future__ import annotations

from collections.abc import Sequence

from ...spec import groups
from .. import plots
from ..runs import Run, as_number
from .format import NR, Figures, answered_by, fmt_s, from_line, md_table, not_run
from .values import by_device, epoch_time, phase_mean


def section(runs: Sequence[Run], figures: Figures) -> list[str]:
    lines = ["## C4: one worker vs the C3.2 worker count", "", "Means over epochs, seconds per epoch.", ""]
    blocks = by_device(runs, groups.C4)
    if not blocks:
        return lines + not_run(groups.C4, runs)
    for index, (run, device, benches) in enumerate(blocks, 1):
        benches.sort(key=lambda b: as_number(b.extra("workers")) or 0)
        lines += [f"### device={device}", "", from_line(run), ""]
        rows, labels, load, train = [], [], [], []
        for b in benches:
            workers = b.extra("workers")
            choice = b.param("choice", "")
            label = (
                f"{workers} worker{'s' if workers != 1 else ''}"
                + (" (C3.2)" if str(choice).startswith("c3") else "")
                + answered_by(b)
            )
            ld, tr, ep = phase_mean(b, "load_s"), phase_mean(b, "train_s"), epoch_time(b)
            share = f"{ld / ep:.0%}" if ld is not None and ep else NR
            rows.append([label, fmt_s(ld), fmt_s(tr), fmt_s(ep), share])
            if ld is not None and tr is not None:
                labels.append(label)
                load.append(ld)
                train.append(tr)
        lines += md_table(["workers", "load (s)", "train (s)", "epoch (s)", "loading share of epoch"], rows)
        rule = next((b.extra("c32_rule") for b in benches if b.extra("c32_rule")), None)
        if rule:
            lines += [f"C3.2 count from: {rule}.", ""]
        if labels:
            title = f"C4: loading vs training time ({device}, {run.label})"
            parts = {plots.PHASE_NAMES["load_s"]: load, plots.PHASE_NAMES["train_s"]: train}
            lines += figures.add(f"c4_side_by_side_{index}_{device}", title, plots.grouped_bars, labels, parts, title)
    return lines
