"""The answer sheet's D5 section: large-batch accuracy, read from saved runs (no torch)."""

from __future__ import annotations

from collections.abc import Sequence

from ...spec import groups
from ..runs import Run
from .dvalues import batch_of, device_of, found, ranks_of
from .format import NR, fmt_int, fmt_loss, fmt_num, fmt_pct, fmt_s, md_table, not_run, sources_line


def d5_section(runs: Sequence[Run]) -> list[str]:
    lines = [
        "## D5: large-batch accuracy",
        "",
        "Five epochs at D1's largest per-rank batch × the ranks, against the "
        "batch-128 run: learning rate as the lab prescribes "
        "(0.1), and scaled linearly with the global batch after a linear warm-up (Goyal et al., 2017).",
        "",
    ]
    benches = found(runs, groups.D5)
    if not benches:
        return lines + not_run(groups.D5, runs, "D5 trains five full epochs: it runs in the full preset only.")
    lines += sources_line(run for run, _ in benches)
    rows = []
    for _, b in benches:
        rows.append(
            [
                str(b.extra("d5_run") or NR),
                device_of(b),
                str(ranks_of(b)),
                fmt_int(batch_of(b)),
                fmt_int(b.extra("global_batch")),
                str(b.param("lr_rule") or NR),
                fmt_num(b.number("lr"), 4),
                fmt_loss(b.number("loss")),
                fmt_pct(b.number("top1")),
                fmt_pct(b.number("test_top1")),
                fmt_s(b.number("epoch_s")),
            ]
        )
    lines += md_table(
        [
            "run",
            "device",
            "ranks",
            "batch/rank",
            "global batch",
            "lr rule",
            "final lr",
            "final loss",
            "train top-1",
            "test top-1",
            "mean epoch (s)",
        ],
        rows,
    )
    return lines
