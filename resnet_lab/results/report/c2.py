"""C1/C2: where an epoch goes, phase by phase, per epoch and on average."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...spec import groups
from .. import plots
from ..cputime import change_kind
from ..runs import Run, as_number
from .format import NR, Figures, fmt_int, fmt_loss, fmt_pct, fmt_rate, fmt_s, from_line, md_table, not_run
from .values import CPU_PHASES, PHASES, epoch_time, last_value, phase_mean


def section(runs: Sequence[Run], figures: Figures) -> list[str]:
    lines = [
        "## C1/C2: where an epoch goes (data loading, training, total)",
        "",
        "Data loading is the time spent waiting for the next batch, excluding the host→device copy; "
        "training is forward, loss, backward and optimizer step, device-synchronized; metric bookkeeping "
        "(loss.item(), accuracy) is timed apart. Top-1 is the fraction of correct argmax over every "
        "training sample seen in the epoch (C1). Times in seconds.",
        "",
    ]
    benches = [(run, b) for run in runs for b in run.group(groups.C2)]
    if not benches:
        return lines + not_run(groups.C2, runs)
    first: dict[str, tuple[Run, Any]] = {}  # param_text -> the first run's benchmark, which later runs are read against
    for index, (run, bench) in enumerate(benches, 1):
        lines += [f"### {bench.param_text}", "", from_line(run, bench), ""]
        records = bench.epochs()
        rows = []
        for r in records:
            rows.append(
                [
                    str(r.get("epoch", NR)),
                    fmt_int(r.get("batches")),
                    fmt_int(r.get("images")),
                    *(fmt_s(r.get(k)) for k in PHASES),
                    fmt_s(r.get("epoch_s")),
                    fmt_rate(r.get("images_per_s")),
                    fmt_loss(r.get("loss")),
                    fmt_pct(r.get("top1")),
                    "yes" if r.get("warmup") is True else "no",
                ]
            )
        rows.append(
            [
                f"**mean over {len(records) or 'all'} epochs**",
                "",
                "",
                *(fmt_s(phase_mean(bench, k)) for k in PHASES),
                fmt_s(epoch_time(bench)),
                fmt_rate(phase_mean(bench, "images_per_s")),
                fmt_loss(last_value(bench, "loss")) + " (last)",
                fmt_pct(last_value(bench, "top1")) + " (last)",
                "",
            ]
        )
        if len(records) > 1 and any(r.get("warmup") is True for r in records):
            rows.append(
                [
                    "**mean without warm-up**",
                    "",
                    "",
                    *(fmt_s(phase_mean(bench, k, skip_warmup=True)) for k in PHASES),
                    fmt_s(phase_mean(bench, "epoch_s", skip_warmup=True)),
                    fmt_rate(phase_mean(bench, "images_per_s", skip_warmup=True)),
                    "",
                    "",
                    "",
                ]
            )
        lines += md_table(
            [
                "epoch",
                "batches",
                "images",
                "start-up (s)",
                "load (s)",
                "copy (s)",
                "train (s)",
                "metrics (s)",
                "shutdown (s)",
                "epoch (s)",
                "images/s",
                "loss",
                "top-1",
                "warm-up",
            ],
            rows,
        )
        lines += cpu_lines(bench, first.setdefault(bench.param_text, (run, bench)))
        if bench.number("test_top1") is not None:
            lines += [
                "Test set after the last epoch: loss "
                f"{fmt_loss(bench.number('test_loss'))}, top-1 "
                f"{fmt_pct(bench.number('test_top1'))}.",
                "",
            ]
        plotted = phase_series(records)
        if plotted:
            epochs, phases = plotted
            title = f"C2 phases per epoch ({bench.param_text}, {run.label})"
            lines += figures.add(
                f"c2_phases_{index}_{bench.param_text}",
                title,
                plots.phase_breakdown,
                epochs,
                phases,
                title,
            )
    return lines


def cpu_lines(bench: Any, reference: tuple[Run, Any]) -> list[str]:
    """CPU time beside wall time per phase (steady epochs), and against the first run of the same benchmark,
    whether each phase that got slower computes more or waits more. Nothing for runs without CPU time."""
    if not any(phase_mean(bench, k, skip_warmup=True) is not None for k in CPU_PHASES):
        return []
    rows = []
    for wall_key, cpu_key in zip(PHASES, CPU_PHASES, strict=True):
        wall, cpu = phase_mean(bench, wall_key, skip_warmup=True), phase_mean(bench, cpu_key, skip_warmup=True)
        busy = f"{cpu / wall:.2f}" if wall and cpu is not None else NR
        rows.append([wall_key.removesuffix("_s"), fmt_s(wall), fmt_s(cpu), busy])
    lines = [
        "CPU time beside wall time (this process, every thread; mean over the steady epochs). CPU / wall is the "
        "threads busy on average: a phase far below the threads it uses is waiting (for the loader, a lock, I/O), "
        "not computing.",
        "",
    ]
    lines += md_table(["phase", "wall (s)", "CPU (s)", "CPU / wall"], rows)
    ref_run, ref = reference
    if ref is not bench:
        changes = []
        for wall_key, cpu_key in zip(PHASES, CPU_PHASES, strict=True):
            values = [phase_mean(b, k, skip_warmup=True) for b in (ref, bench) for k in (wall_key, cpu_key)]
            if all(values):
                old_wall, old_cpu, new_wall, new_cpu = (float(v or 0.0) for v in values)
                kind = change_kind(new_wall / old_wall, new_cpu / old_cpu)
                if kind:
                    changes.append(
                        f"{wall_key.removesuffix('_s')} {new_wall / old_wall:.3f}x wall, "
                        f"{new_cpu / old_cpu:.3f}x CPU: {kind}"
                    )
        lines += [
            f"Against {ref_run.label}: " + ("; ".join(changes) if changes else "no phase slower by more than 2%") + ".",
            "",
        ]
    return lines


def phase_series(records: Sequence[dict[str, Any]]) -> tuple[list[int], dict[str, list[float]]] | None:
    """Per-epoch phase seconds for the stacked plot, with `other_s` = epoch - phases (>= 0)."""
    rows = [r for r in records if as_number(r.get("epoch_s")) is not None]
    if not rows:
        return None
    epochs = [int(as_number(r.get("epoch")) or i) for i, r in enumerate(rows, 1)]
    phases: dict[str, list[float]] = {}
    for key in PHASES:
        values = [as_number(r.get(key)) for r in rows]
        if all(v is not None for v in values):
            phases[key] = [float(v) for v in values]  # type: ignore[arg-type]  # all(...) above: no None left
    phases["other_s"] = [max(0.0, float(r["epoch_s"]) - sum(phases[k][i] for k in phases)) for i, r in enumerate(rows)]
    return epochs, phases
