"""The table C6 and C7 share: one row per configuration, and curves of loss and top-1 per epoch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .. import plots
from ..runs import SEED_PARAM, Run
from .format import Figures, answered_by, fmt_loss, fmt_pct, fmt_s, from_line, md_table, not_run
from .values import by_device, curves_of, epoch_time, last_value, phase_mean


def training_table_section(
    runs: Sequence[Run], figures: Figures, group: str, param: str, title: str, intro: str, label: Callable[[Any], str]
) -> list[str]:
    """C6 and C7: one row per configuration, curves of loss and top-1 per epoch."""
    lines = [title, "", intro, ""]
    blocks = by_device(runs, group)
    if not blocks:
        return lines + not_run(group, runs)
    for index, (run, device, benches) in enumerate(blocks, 1):
        lines += [f"### device={device}", "", from_line(run), ""]
        rows, curves = [], {}
        for b in benches:
            name = label(b.param(param)) + (f" (seed {b.seed})" if SEED_PARAM in b.params else "")
            rows.append(
                [
                    name + answered_by(b),
                    fmt_s(phase_mean(b, "train_s")),
                    fmt_s(epoch_time(b)),
                    fmt_loss(last_value(b, "loss")),
                    fmt_pct(last_value(b, "top1")),
                    fmt_pct(b.number("test_top1")),
                ]
            )
            epochs, loss, top1 = curves_of(b)
            if loss or top1:
                curves[name] = (epochs, loss, top1)
        lines += md_table(
            [
                param.replace("_", " "),
                "mean train (s/epoch)",
                "mean epoch (s)",
                "final loss",
                "final top-1 (train)",
                "test top-1",
            ],
            rows,
        )
        if curves:
            plot_title = f"{group}: loss and top-1 per epoch ({device}, {run.label})"
            lines += figures.add(f"{group}_curves_{index}_{device}", plot_title, plots.epoch_curves, curves, plot_title)
    return lines
